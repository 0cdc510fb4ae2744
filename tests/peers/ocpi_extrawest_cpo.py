"""extrawest-ocpi (an independent OCPI 2.2.1 implementation from PyPI) as a CPO on a real port.

Run by the interpreter of .venv-peers/ocpi (its pins cannot share our venv).  It is the partner in
tests/integration/test_ocpi_independent.py: the library does the protocol (versions, credentials, locations
sender, paging headers); this file only gives it the storage and authentication hooks it asks for, in memory.

argv: port token_a locations_json_file.  Prints nothing secret.
"""

import json
import os
import secrets
import sys

port, token_a, loc_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.environ.update(OCPI_HOST=f"127.0.0.1:{port}", PROTOCOL="http", COUNTRY_CODE="BE", PARTY_ID="BEC",
                  ENVIRONMENT="production")

import uvicorn  # noqa: E402
from py_ocpi import get_application  # noqa: E402
from py_ocpi.core.authentication.authenticator import Authenticator  # noqa: E402
from py_ocpi.core.crud import Crud  # noqa: E402
from py_ocpi.core.enums import ModuleID, RoleEnum  # noqa: E402
from py_ocpi.modules.versions.enums import VersionNumber  # noqa: E402

with open(loc_file) as f:
    LOCATIONS = json.load(f)
STATE: dict = {"token_a": [token_a], "token_c": [], "partner": None}


class Tokens(Authenticator):
    @classmethod
    async def get_valid_token_c(cls):
        return STATE["token_c"]

    @classmethod
    async def get_valid_token_a(cls):
        return STATE["token_a"]


def _our_credentials(token: str) -> dict:
    return {"token": token, "url": f"http://127.0.0.1:{port}/ocpi/versions",
            "roles": [{"role": "CPO", "country_code": "BE", "party_id": "BEC",
                       "business_details": {"name": "extrawest peer CPO"}}]}


class Memory(Crud):
    @classmethod
    async def get(cls, module, role, id, *args, **kwargs):
        if module == ModuleID.locations:
            return next((x for x in LOCATIONS if x["id"].upper() == str(id).upper()), None)
        if module == ModuleID.credentials_and_registration:
            return _our_credentials(STATE["token_c"][-1]) if STATE["token_c"] else None
        return None

    @classmethod
    async def list(cls, module, role, filters, *args, **kwargs):
        items = LOCATIONS if module == ModuleID.locations else []
        off, lim = filters["offset"], filters["limit"]
        return items[off:off + lim], len(items), off + lim >= len(items)

    @classmethod
    async def create(cls, module, role, data, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            STATE["partner"] = data  # the registering party's token B and versions URL
            STATE["token_c"].append(secrets.token_urlsafe(32))
            STATE["token_a"].clear()  # token A is single-use
            return _our_credentials(STATE["token_c"][-1])
        return data

    @classmethod
    async def update(cls, module, role, data, id, *args, **kwargs):
        return data

    @classmethod
    async def delete(cls, module, role, id, *args, **kwargs):
        return None

    @classmethod
    async def do(cls, module, role, action, *args, data=None, **kwargs):
        return None


app = get_application(version_numbers=[VersionNumber.v_2_2_1], roles=[RoleEnum.cpo], crud=Memory,
                      modules=[ModuleID.credentials_and_registration, ModuleID.locations], authenticator=Tokens)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
