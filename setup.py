"""Build hook: compile the gettext catalogs (.po -> .mo) into the wheel (pyproject.toml has
the rest of the metadata)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCatalogs(build_py):
    """build_py that also writes translations/<lang>/LC_MESSAGES/messages.mo next to each
    .po it copies (the .mo is package data; the .po is not shipped)."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in Path("imss_updater/translations").glob("*/LC_MESSAGES/*.po"):
            target = Path(self.build_lib) / po.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as source, target.open("wb") as output:
                write_mo(output, read_po(source))


setup(cmdclass={"build_py": BuildPyWithCatalogs})
