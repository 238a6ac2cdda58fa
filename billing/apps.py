from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # What webhooks carry is the API's JSON: the API registers its renderers with the
        # webhook service here, so services announce changes without importing the API.
        from billing.api import webhook_objects

        webhook_objects.register()
