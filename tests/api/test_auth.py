"""No key → 401, another project's ids → 404, a key below the route's role → 403, no default secret."""

from __future__ import annotations

from click.testing import CliRunner

from refeed.cli import main


def _interaction(server) -> str:
    with server.client(server.ingest) as c:
        r = c.post(
            "/v1/interactions", json={"messages": [{"role": "user", "content": "q"}], "completion": "a"}
        )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_missing_or_bad_key_is_401(server):
    iid = _interaction(server)
    body = {"kind": "thumbs", "interaction_id": iid, "up": True}
    with server.client(None) as c:
        assert c.post("/v1/feedback", json=body).status_code == 401
        assert (
            c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).status_code
            == 401
        )
    with server.client("rf_nope.secret") as c:
        assert c.post("/v1/feedback", json=body).status_code == 401


def test_another_projects_data_is_invisible(server):
    iid = _interaction(server)
    with server.client(server.other_admin) as c:
        assert c.get(f"/v1/interactions/{iid}").status_code == 404
        assert (
            c.post("/v1/feedback", json={"kind": "thumbs", "interaction_id": iid, "up": True}).status_code
            == 404
        )
        assert all(f["interaction_id"] != iid for f in c.get("/v1/feedback").json())
    with server.client(server.admin) as c:
        assert c.get(f"/v1/interactions/{iid}").status_code == 200


def test_roles(server):
    iid = _interaction(server)
    with server.client(server.ingest) as c:
        assert c.get("/v1/export").status_code == 403
        assert c.get(f"/v1/interactions/{iid}").status_code == 403
    with server.client(server.feedback) as c:  # browser-safe: feedback only
        assert (
            c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).status_code
            == 403
        )
        assert (
            c.post("/v1/feedback", json={"kind": "thumbs", "interaction_id": iid, "up": True}).status_code
            == 201
        )
    with server.client(server.admin) as c:
        assert c.get("/v1/export").status_code == 200


def test_serve_refuses_to_start_without_an_admin_key(tmp_path):
    res = CliRunner().invoke(
        main, ["serve", "--upstream", "http://127.0.0.1:9/v1", "--store", f"sqlite:///{tmp_path}/f.db"]
    )
    assert res.exit_code == 2 and "no admin key" in res.output and "--init-admin-key" in res.output
    res = CliRunner().invoke(main, ["serve", "--store", f"sqlite:///{tmp_path}/f.db", "--local"])
    assert res.exit_code == 2 and "exactly one of --model" in res.output


def test_admins_manage_their_projects_keys_only(server):
    with server.client(server.admin) as c:
        made = c.post("/v1/keys", json={"role": "ingest"})
        assert made.status_code == 201, made.text
        key, prefix = made.json()["key"], made.json()["prefix"]
        assert c.post("/v1/keys", json={"role": "root"}).status_code == 422
        listed = {k["prefix"]: k for k in c.get("/v1/keys").json()}
        assert listed[prefix]["role"] == "ingest" and "key" not in listed[prefix]  # no secret is ever listed
    with server.client(key) as c:
        assert c.get("/v1/whoami").json() == {"project": "default", "role": "ingest"}
        assert c.post("/v1/keys", json={"role": "admin"}).status_code == 403  # no escalation
    with server.client(server.other_admin) as c:
        assert c.delete(f"/v1/keys/{prefix}").status_code == 404  # another project's key looks absent
        assert prefix not in {k["prefix"] for k in c.get("/v1/keys").json()}
    with server.client(server.admin) as c:
        assert c.delete(f"/v1/keys/{prefix}").status_code == 204
    with server.client(key) as c:
        assert c.get("/v1/whoami").status_code == 401  # revoked: refused at once on this server
