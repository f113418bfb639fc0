from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apikeys.models import ApiKey
from apikeys.services import api_key_hash


def test_it_prints_the_key_alone_on_the_last_line_and_stores_its_hash(db, bot):
    out = StringIO()
    call_command(
        "createapikey",
        "--name",
        "ci",
        "--bot",
        str(bot.id),
        "--expires",
        "2999-01-01",
        stdout=out,
        stderr=StringIO(),
    )
    raw_key = out.getvalue().strip().splitlines()[-1]
    api_key = ApiKey.objects.get(name="ci")
    assert api_key.key_hash == api_key_hash(raw_key)
    assert list(api_key.allowed_bots.all()) == [bot]
    assert api_key.expires_at.year == 2999


def test_it_refuses_unknown_bots_and_bad_dates(db):
    with pytest.raises(CommandError, match="No bot with id 404"):
        call_command("createapikey", "--name", "x", "--bot", "404", stdout=StringIO())
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("createapikey", "--name", "x", "--expires", "tomorrow", stdout=StringIO())
