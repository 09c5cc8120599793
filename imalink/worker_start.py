"""What an ImaLink Celery worker says as it starts: which instance it belongs to and which queue it serves."""

import logging

from celery.signals import celeryd_after_setup
from django.conf import settings

logger = logging.getLogger("imalink.worker")


@celeryd_after_setup.connect
def say_which_instance(sender, instance, **kwargs) -> None:
    queues = ", ".join(sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues))
    logger.info(
        "ImaLink instance %s: serving queue %s, Redis keys under %s",
        settings.IMALINK_INSTANCE,
        queues,
        settings.IMALINK_REDIS_PREFIX,
    )
