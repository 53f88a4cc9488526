"""The service's HTTP surface: auth with an open health check, the OpenAPI document, 415 for the wrong body
type, the offline docs page, and one log line per client error."""

import json
import logging
import re

from bentos import client_errors


def _error(reply) -> str:
    body = reply.json()
    return json.dumps(body)


def test_auth_and_open_health(api, trained) -> None:
    assert api.post("/recommend", json={"user_id": "u"}, headers={"X-API-Key": ""}).status_code == 401
    assert api.get("/healthz", headers={"X-API-Key": ""}).status_code == 200
    assert api.get("/readyz", headers={"X-API-Key": ""}).status_code == 200
    assert api.post("/ping", json={}, headers={"X-API-Key": ""}).status_code == 401
    assert api.post("/ping", json={}).json() == {"model_tag": api.get("/model").json()["tag"]}
    info = api.get("/model").json()
    assert info["tag"] and info["labels"]["data_version"] == "tiny" and info["evaluation"]
    assert info["index"] == "exact" and info["last_load_error"] is None


def test_openapi_documents_every_endpoint(api) -> None:
    spec = api.get("/docs.json").json()
    assert {"/recommend", "/similar", "/search", "/creators", "/rank", "/videos", "/events", "/model", "/ping"} <= set(
        spec["paths"]
    )


def test_unknown_category_is_a_400_that_names_it(api, known_user) -> None:
    for path, body in (
        ("/recommend", {"user_id": known_user}),
        ("/similar", {"video_id": "v00001"}),
        ("/search", {"query": "guitar"}),
    ):
        reply = api.post(path, json={**body, "k": 3, "filters": {"category": "no-such-category"}})
        assert reply.status_code == 400, (path, reply.text)
        assert "unknown filters.category 'no-such-category'" in _error(reply) and "music" in _error(reply)
        assert api.post(path, json={**body, "k": 3, "filters": {"category": "music"}}).status_code == 200


def test_form_and_text_bodies_get_415_not_results(api, known_user) -> None:
    form = api.post("/recommend", data={"user_id": known_user, "k": "3"})
    assert form.status_code == 415 and "application/json" in _error(form)
    text = api.post("/search", content=b'{"query": "guitar"}', headers={"content-type": "text/plain"})
    assert text.status_code == 415


def test_docs_page_and_its_files_need_no_key_and_no_internet(api) -> None:
    open_ = {"X-API-Key": ""}
    page = api.get("/docs", headers=open_)
    assert page.status_code == 200 and "googletagmanager" not in page.text and "https://" not in page.text
    assert api.get("/", headers=open_).text == page.text
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert len(assets) == 3
    for asset in assets:
        assert api.get(asset, headers=open_).status_code == 200, asset
    assert "/recommend" in api.get("/docs.json", headers=open_).json()["paths"]


def test_client_errors_are_one_info_line_and_server_errors_keep_their_traceback(api) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(client_errors.BENTOML_API_LOGGER)
    logger.addHandler(handler)
    try:
        assert api.post("/recommend", json={"k": 0}).status_code == 400
        assert api.post("/similar", json={"video_id": "v99999"}).status_code == 404
        assert (
            api.post("/recommend", content=b"{not json", headers={"content-type": "application/json"}).status_code
            == 400
        )
    finally:
        logger.removeHandler(handler)
    assert len(records) == 3
    for record in records:
        line = handler.format(record)
        assert record.levelno == logging.INFO and record.exc_info is None and "\n" not in line, line
    assert (
        records[0].getMessage().startswith("400 on /recommend [POST]: 2 validation error(s): user_id: Field required")
    )
    assert "404 on /similar" in records[1].getMessage()
    crash = ValueError("boom")
    kept = logging.LogRecord(
        client_errors.BENTOML_API_LOGGER,
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/rank", "POST"),
        (ValueError, crash, None),
    )
    assert client_errors.ClientErrorFilter().filter(kept) and kept.levelno == logging.ERROR and kept.exc_info
