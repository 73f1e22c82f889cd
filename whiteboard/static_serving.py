"""Static files served by the project itself, under daphne and runserver alike."""

from pathlib import Path

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """whitenoise, serving from the finders (settings.WHITENOISE_USE_FINDERS).

    STATIC_ROOT exists only once `collectstatic` has run, which this project
    does not need; whitenoise would warn about the missing folder at every start.
    """

    def add_files(self, root, prefix=None):
        if self.autorefresh or Path(root).is_dir():
            super().add_files(root, prefix)
