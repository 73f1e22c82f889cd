from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from whiteboard import services
from whiteboard.models import Board


class Command(BaseCommand):
    help = (
        'Give boards a new epoch (PROTOCOL.md, "Board epoch"): run it after '
        "restoring a database backup, so that clients that saw the history the "
        "backup no longer has resume with a full snapshot. Open sockets on "
        "those boards start again (bye + 1012)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--board", metavar="SLUG", help="one board")
        which.add_argument("--all", action="store_true", help="every board")

    def handle(self, *args, board, all, **options):
        boards = Board.objects.all() if all else Board.objects.filter(slug=board)
        if not all and not boards.exists():
            raise CommandError(f"There is no board {board!r}.")
        count = 0
        for found in boards.iterator():
            with transaction.atomic():
                services.board_new_epoch(board=found)
            count += 1
        self.stdout.write(f"New epoch for {count} board(s).")
