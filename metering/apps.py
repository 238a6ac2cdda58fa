from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self) -> None:
        # Vocabularies are plain enums (config.choices), not TextChoices: migrations write their
        # members as plain values, as they do for TextChoices.
        from django.db.migrations.serializer import ChoicesSerializer
        from django.db.migrations.writer import MigrationWriter

        from config.choices import Choices

        MigrationWriter.register_serializer(Choices, ChoicesSerializer)
