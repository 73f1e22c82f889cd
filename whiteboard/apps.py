from django.apps import AppConfig


class WhiteboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "whiteboard"
    verbose_name = "Whiteboard"

    def ready(self) -> None:
        from . import signals

        signals.connect()
