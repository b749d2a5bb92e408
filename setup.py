"""The set-up's one extra step: the web app's JavaScript libraries, from npm by the lock file.

``pip install -e .`` (a PEP 660 editable install) and ``pip install .`` both run ``build_py``;
before its usual work it runs ``npm ci --omit=dev`` on a copy of package.json and
package-lock.json in build/npm/ (so a developer's node_modules/, which also holds the test
tools, is left alone) and copies each library's browser build into relay/web/static/vendor/
(ignored by git: nothing minified is committed). Without npm the install still succeeds: the
upload page then falls back to a plain form and the relay says once what to run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
VENDOR = ROOT / "relay" / "web" / "static" / "vendor"
BROWSER_BUILDS = {
    # npm package: (its browser build, the name the relay serves it under /static/vendor/)
    "tus-js-client": ("dist/tus.min.js", "tus.min.js"),
    "hls.js": ("dist/hls.min.js", "hls.min.js"),
}
STAMP = VENDOR / ".package-lock.sha256"
"""The lock file's hash when vendor/ was filled: unchanged, npm is not run again."""


def _say(message: str) -> None:
    print(f"relay set-up: {message}", file=sys.stderr)


def install_browser_libraries() -> None:
    lock = ROOT / "package-lock.json"
    if not lock.is_file():
        return  # an sdist without the JavaScript parts
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    wanted = [VENDOR / served for _, served in BROWSER_BUILDS.values()]
    if STAMP.is_file() and STAMP.read_text().strip() == digest and all(p.is_file() for p in wanted):
        return
    npm = shutil.which("npm")
    if npm is None:
        _say("npm is missing: the upload page will be a plain form; install npm, run this again")
        return
    work = ROOT / "build" / "npm"
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(ROOT / name, work / name)
    command = [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        subprocess.run(command, cwd=work, check=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        _say(f"`npm ci --omit=dev` failed ({exc}); the upload page will be a plain form")
        return
    VENDOR.mkdir(parents=True, exist_ok=True)
    for package, (build, served) in BROWSER_BUILDS.items():
        shutil.copyfile(work / "node_modules" / package / build, VENDOR / served)
        licence = work / "node_modules" / package / "LICENSE"
        if licence.is_file():
            shutil.copyfile(licence, VENDOR / f"{package}.LICENSE")
    STAMP.write_text(digest + "\n")


class BuildWithBrowserLibraries(build_py):
    def run(self) -> None:
        install_browser_libraries()
        super().run()


setup(cmdclass={"build_py": BuildWithBrowserLibraries})
