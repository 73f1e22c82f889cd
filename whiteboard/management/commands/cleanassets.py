from django.core.management.base import BaseCommand, CommandError

from whiteboard import assets
from whiteboard.changes import megabytes
from whiteboard.models import Board


class Command(BaseCommand):
    help = (
        "Delete the uploaded images that nothing on their board names any more "
        "(no element, no op of the kept history, no checkpoint) and that are "
        "older than an hour, with their files; run it from cron "
        '(docs/deploy.md, "Images and assets").'
    )

    def add_arguments(self, parser):
        parser.add_argument("--board", metavar="SLUG", help="one board only")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list what would be deleted, delete nothing",
        )

    def handle(self, *args, board, dry_run, **options):
        boards = None
        if board:
            boards = list(Board.objects.filter(slug=board))
            if not boards:
                raise CommandError(f"There is no board {board!r}.")
        removed = assets.sweep(boards=boards, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        for item in removed:
            self.stdout.write(f"{verb} {item.key} of board {item.slug!r}.")
        total = sum(item.bytes for item in removed)
        self.stdout.write(f"{verb} {len(removed)} unused images ({megabytes(total)}).")
