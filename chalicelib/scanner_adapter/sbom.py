"""SBOMs of an analysed image: SPDX 2.3 JSON (written here: the SPDX tools package pulls in an
RDF stack for a document this small) and CycloneDX 1.6 JSON (cyclonedx-python-lib).

Both describe the image (named by repository and digest) containing the OS and one package per
installed package, each with its purl. Identifiers, the serial number and the namespace derive
from the artifact digest, so the same image gives the same documents apart from the timestamp.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from chalicelib.scanner_adapter.packages import Inventory

SPDX_JSON = "application/spdx+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
MEDIA_TYPES = (SPDX_JSON, CYCLONEDX_JSON)
_NAMESPACE = uuid.UUID("6f1c9a43-5a3b-4d3e-9a55-0b7d2d6c1e20")


def build(
    media_type: str, inventory: Inventory, artifact: dict[str, Any], tool: str, created: datetime
) -> dict[str, Any]:
    if media_type == SPDX_JSON:
        return spdx(inventory, artifact, tool, created)
    if media_type == CYCLONEDX_JSON:
        return cyclonedx(inventory, artifact, tool, created)
    raise ValueError(f"unsupported SBOM media type {media_type!r}")


def spdx(inventory: Inventory, artifact: dict[str, Any], tool: str, created: datetime) -> dict[str, Any]:
    image_id = "SPDXRef-Image"
    image_name = f"{artifact['repository']}@{artifact['digest']}"
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": image_id,
            "name": artifact["repository"],
            "versionInfo": artifact["digest"],
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    if inventory.os is not None:
        packages.append(
            {
                "SPDXID": "SPDXRef-OperatingSystem",
                "name": inventory.os.id,
                "versionInfo": inventory.os.version_id or "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "primaryPackagePurpose": "OPERATING_SYSTEM",
            }
        )
        relationships.append(_contains(image_id, "SPDXRef-OperatingSystem"))
    for number, package in enumerate(inventory.packages, start=1):
        element = f"SPDXRef-Package-{package.kind}-{_spdx_safe(package.name)}-{number}"
        packages.append(
            {
                "SPDXID": element,
                "name": package.name,
                "versionInfo": package.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseDeclared": "NOASSERTION",
                "sourceInfo": f"from {package.path} in layer {package.diff_id}",
                "primaryPackagePurpose": "LIBRARY",
                "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": package.purl}
                ],
            }
        )
        relationships.append(_contains(image_id, element))
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": f"https://spdx.org/spdxdocs/osv-lite/{_serial(artifact)}",
        "creationInfo": {"created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "creators": [f"Tool: {tool}"]},
        "packages": packages,
        "relationships": relationships,
    }


def _contains(parent: str, child: str) -> dict[str, str]:
    return {"spdxElementId": parent, "relationshipType": "CONTAINS", "relatedSpdxElement": child}


def _spdx_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", name)


def _serial(artifact: dict[str, Any]) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{artifact['repository']}@{artifact['digest']}")


def cyclonedx(inventory: Inventory, artifact: dict[str, Any], tool: str, created: datetime) -> dict[str, Any]:
    from cyclonedx.model.bom import Bom  # noqa: PLC0415 (heavy; only when an SBOM is asked for)
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415
    from cyclonedx.output.json import JsonV1Dot6  # noqa: PLC0415
    from packageurl import PackageURL  # noqa: PLC0415

    bom = Bom(serial_number=_serial(artifact))
    bom.metadata.timestamp = created
    image = Component(
        type=ComponentType.CONTAINER, name=artifact["repository"], version=artifact["digest"], bom_ref="image"
    )
    bom.metadata.component = image
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name=tool, bom_ref="tool"))
    members = []
    if inventory.os is not None:
        system = Component(
            type=ComponentType.OPERATING_SYSTEM,
            name=inventory.os.id,
            version=inventory.os.version_id or None,
            bom_ref="os",
        )
        bom.components.add(system)
        members.append(system)
    for number, package in enumerate(inventory.packages, start=1):
        component = Component(
            type=ComponentType.LIBRARY,
            name=package.name,
            version=package.version,
            purl=PackageURL.from_string(package.purl),
            bom_ref=f"{package.kind}-{number}",
        )
        bom.components.add(component)
        members.append(component)
    bom.register_dependency(image, members)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return document
