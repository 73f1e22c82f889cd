from django.apps import AppConfig


class WhiteboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "whiteboard"
    verbose_name = "Whiteboard"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from . import metrics, signals

        signals.connect()
        got_request_exception.connect(
            metrics.count_request_error, dispatch_uid="whiteboard.metrics"
        )
