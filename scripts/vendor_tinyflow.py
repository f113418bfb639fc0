"""Refresh the vendored Tinyflow editor (`@tinyflow-ai/ui`, LGPL-3.0-or-later) from npm.

    python scripts/vendor_tinyflow.py [--version 1.2.3]     (make vendor-tinyflow)

Downloads the package tarball from registry.npmjs.org, checks it against the registry's
sha512 integrity, and copies the browser bundle, its stylesheet, the licence and
package.json UNMODIFIED into workflows/static/workflows/tinyflow/ (LGPL: the bundle stays
replaceable by the operator; this script is how). No Node is needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

PACKAGE = "@tinyflow-ai/ui"
REGISTRY = "https://registry.npmjs.org"
TARGET = Path(__file__).resolve().parent.parent / "workflows" / "static" / "workflows" / "tinyflow"
FILES = {
    "package/dist/index.umd.js": "index.umd.js",
    "package/dist/index.css": "index.css",
    "package/LICENSE": "LICENSE",
    "package/package.json": "package.json",
}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="latest", help="a version or dist-tag")
    args = parser.parse_args()
    metadata = json.loads(fetch(f"{REGISTRY}/{PACKAGE}"))
    version = metadata["dist-tags"].get(args.version, args.version)
    dist = metadata["versions"][version]["dist"]
    tarball = fetch(dist["tarball"])
    algorithm, _, expected = dist["integrity"].partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"unexpected integrity algorithm {algorithm}")
    actual = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{dist['tarball']}: sha512 mismatch")
    TARGET.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member, name in FILES.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise SystemExit(f"{member} is missing from the package")
            (TARGET / name).write_bytes(extracted.read())
    origin = f"{PACKAGE}@{version}\n{dist['tarball']}\n{dist['integrity']}\n"
    (TARGET / "VERSION").write_text(origin)
    print(f"vendored {PACKAGE}@{version} into {TARGET}")


if __name__ == "__main__":
    main()
