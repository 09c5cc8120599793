"""How a page says "not found": the services raise the app's NotFound, and a page answers Django's 404 page.

The API needs nothing of this: its error handler turns NotFound into the JSON error shape.
"""

from collections.abc import Callable
from typing import TypeVar

from django.http import Http404

from .errors import NotFound

T = TypeVar("T")


def or_404(getter: Callable[..., T], *args) -> T:
    """`getter(*args)`, with the app's NotFound turned into Http404 (its message kept for the 404 page)."""
    try:
        return getter(*args)
    except NotFound as exc:
        raise Http404(exc.message) from None
