"""Build step: compile the message catalogs (.po -> .mo) into what is installed.

The .mo files are build products and never committed (.gitignore): a wheel gets them from this
step, so `pip install .` serves Japanese without `make`; an editable install gets them compiled
next to their .po in the checkout. Everything else is declared in pyproject.toml.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def compile_catalogs(target_root: Path) -> list[str]:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted((HERE / "translations").glob("*/*/LC_MESSAGES/messages.po")):
        relative = po.relative_to(HERE).with_suffix(".mo")
        target = target_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parts[-3])
        with target.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=True)  # as `pybabel compile -f` (make translations)
        written.append(str(target))
    return written


class BuildPyWithCatalogs(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        self._catalogs = compile_catalogs(HERE if editable else Path(self.build_lib))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + list(getattr(self, "_catalogs", []))


setup(cmdclass={"build_py": BuildPyWithCatalogs})
