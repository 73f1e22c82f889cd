from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from whiteboard import portability
from whiteboard.models import Board


class Command(BaseCommand):
    help = "Write a board to a file of the export format (docs/history.md)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--output", metavar="FILE", help="default: standard output")
        parser.add_argument("--history", action="store_true", help="include its ops")

    def handle(self, *args, slug, output, history, **options):
        board = Board.objects.filter(slug=slug).first()
        if board is None:
            raise CommandError(f"There is no board {slug!r}.")
        try:
            data = portability.export_bytes(board, history=history)
        except portability.ImportRefused as exc:
            raise CommandError(exc.message) from exc
        if output:
            Path(output).write_bytes(data + b"\n")
            self.stderr.write(f"Board {slug!r} written to {output}.")
        else:
            self.stdout.write(data.decode())
