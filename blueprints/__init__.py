"""The web layer: one package per area; views stay thin over the accounts domain.

Area packages (``admin``, ``portal``) list their modules in ``AREA_MODULES`` and load them with
``import_areas``, the one way an area module is found. What the module then does differs for a
reason: a console area adds its routes to the one ``admin`` blueprint as it is imported; a portal
area has ``register(bp)``, called once per portal, because the same views serve two blueprints.
"""
import importlib
from types import ModuleType


def import_areas(package: str, names) -> list[ModuleType]:
    """Import ``package.<name>`` for every name, in order; returns the modules."""
    return [importlib.import_module(f"{package}.{name}") for name in names]
