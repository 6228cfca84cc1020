"""``remote_write:`` entries: Prometheus's fields and defaults, and every mistake at file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerting.config.alertmanager import load_config
from alerting.config.yamlfile import load_text
from alerting.errors import ConfigError
from alerting.remotewrite import QueueConfig, RelabelConfig, RemoteWriteTarget, parse_remote_write
from alerting.transport import Authorization, BasicAuth


def parse(text: str, env: dict[str, str] | None = None) -> tuple[RemoteWriteTarget, ...]:
    doc = load_text(textwrap.dedent(text).lstrip(), "alerting.yml", ConfigError)
    return parse_remote_write(doc["remote_write"], doc.at("remote_write"), env=env)


def test_an_entry_with_only_a_url_has_prometheus_2_42_defaults() -> None:
    (target,) = parse("remote_write: [{url: 'http://127.0.0.1:9090/api/v1/write'}]")
    assert target.url == "http://127.0.0.1:9090/api/v1/write"
    assert (target.name, target.remote_timeout, target.headers, target.write_relabel_configs) == (
        "",
        30.0,
        (),
        (),
    )
    assert target.queue == QueueConfig(
        capacity=2500,
        max_shards=200,
        min_shards=1,
        max_samples_per_send=500,
        batch_send_deadline=5.0,
        min_backoff=0.03,
        max_backoff=5.0,
        retry_on_http_429=True,
        sample_age_limit=0.0,
    )
    assert not target.http.has_auth and target.http.follow_redirects
    # Unnamed targets are told apart in metrics and logs by a short hash of their URL.
    assert (
        len(target.remote) == 6
        and target.remote == parse(f"remote_write: [{{url: '{target.url}'}}]")[0].remote
    )


def test_every_field_is_read() -> None:
    (target,) = parse(
        """
        remote_write:
          - url: https://user:secret@metrics.example/api/v1/write
            name: central
            remote_timeout: 10s
            headers: {X-Scope-OrgID: team-a}
            basic_auth: {username: writer, password: "${RW_PASSWORD}"}
            tls_config: {insecure_skip_verify: true}
            follow_redirects: false
            write_relabel_configs:
              - {source_labels: [__name__], regex: "job:.*", action: keep}
            queue_config:
              capacity: 100
              max_samples_per_send: 10
              batch_send_deadline: 1s
              min_backoff: 10ms
              max_backoff: 1s
              retry_on_http_429: false
              sample_age_limit: 5m
              max_shards: 4
            metadata_config: {send: false, send_interval: 1m}
            send_exemplars: false
            send_native_histograms: false
        """,
        env={"RW_PASSWORD": "pw"},
    )
    assert (target.name, target.remote, target.remote_timeout) == ("central", "central", 10.0)
    assert target.shown_url == "https://metrics.example/api/v1/write"
    assert target.headers == (("X-Scope-OrgID", "team-a"),)
    assert target.http.basic_auth == BasicAuth(username="writer", password="pw")
    assert target.http.tls_config.insecure_skip_verify and not target.http.follow_redirects
    assert target.write_relabel_configs == (
        RelabelConfig(action="keep", source_labels=("__name__",), regex="job:.*"),
    )
    assert target.queue == QueueConfig(
        capacity=100,
        max_shards=4,
        max_samples_per_send=10,
        batch_send_deadline=1.0,
        min_backoff=0.01,
        max_backoff=1.0,
        retry_on_http_429=False,
        sample_age_limit=300.0,
    )


def test_authorization_and_oauth2_come_from_the_shared_http_config() -> None:
    (bearer, _) = parse(
        """
        remote_write:
          - {url: 'http://a/w', authorization: {credentials_file: /run/token}}
          - url: http://b/w
            oauth2: {client_id: c, client_secret: s, token_url: http://b/token}
        """
    )
    assert bearer.http.authorization == Authorization("Bearer", "", "/run/token")


CASES = [
    ("remote_write: {url: http://a}", "1:15", "remote_write must be a list, got a mapping"),
    ("remote_write: [{name: x}]", "1:16", "remote_write[0]: url is required"),
    ("remote_write: [{url: 'ftp://a/w'}]", "1:22", "url must be an http:// or https:// URL with a host"),
    (
        "remote_write: [{url: 'http://a', urll: 1}]",
        "1:34",
        'unknown field "urll" in remote_write[0] (did you mean "url"?)',
    ),
    (
        "remote_write: [{url: 'http://a', queue_config: {capacity: 0}}]",
        "1:59",
        "remote_write[0] queue_config: capacity must be a whole number above 0, got 0",
    ),
    (
        "remote_write: [{url: 'http://a', queue_config: {max_samples_per_send: many}}]",
        "1:71",
        "max_samples_per_send must be a whole number above 0, got 'many'",
    ),
    (
        "remote_write: [{url: 'http://a', queue_config: {min_backoff: 1.5s}}]",
        "1:62",
        'remote_write[0] queue_config: min_backoff: not a valid duration string: "1.5s"',
    ),
    (
        "remote_write: [{url: 'http://a', queue_config: {batch_send_deadline: 0}}]",
        "1:70",
        "batch_send_deadline must be above zero",
    ),
    (
        "remote_write: [{url: 'http://a', remote_timeout: 1x}]",
        "1:50",
        'remote_timeout: not a valid duration string: "1x"',
    ),
    (
        "remote_write: [{url: 'http://a', headers: {Authorization: x}}]",
        "1:44",
        "the Authorization header is set through basic_auth, authorization or oauth2, not headers",
    ),
    (
        "remote_write: [{url: 'http://a', headers: {user-agent: x}}]",
        "1:44",
        "user-agent is a reserved header; it cannot be set in headers",
    ),
    (
        "remote_write: [{url: 'http://a', headers: {X-Remote: 1}}]",
        "1:54",
        "header X-Remote must be a string, got a number",
    ),
    (
        "remote_write: [{url: 'http://a', send_exemplars: true}]",
        "1:50",
        "send_exemplars cannot be true: the worker records float samples only, it has no exemplars to send",
    ),
    (
        "remote_write: [{url: 'http://a', name: n, send_native_histograms: true}]",
        "1:67",
        'remote_write "n": send_native_histograms cannot be true',
    ),
    ("remote_write: [{url: 'http://a', sigv4: {region: eu}}]", "1:34", "sigv4 is not supported here"),
    (
        "remote_write: [{url: 'http://a', azuread: {cloud: AzurePublic}}]",
        "1:34",
        "azuread is not supported here",
    ),
    (
        "remote_write: [{url: 'http://a', metadata_config: {sned: true}}]",
        "1:52",
        'unknown field "sned" in remote_write[0] metadata_config (did you mean "send"?)',
    ),
    (
        "remote_write: [{url: 'http://a', basic_auth: {username: u}, bearer_token: t}]",
        "1:75",
        "use only one of basic_auth, authorization and bearer_token",
    ),
    (
        "remote_write: [{url: 'http://a', tls_config: {ca_file: /nonexistent/ca.pem}}]",
        "1:46",
        "cannot load TLS files",
    ),
    (
        "remote_write: [{url: 'http://a', name: x}, {url: 'http://b', name: x}]",
        "1:68",
        'the name "x" is used twice',
    ),
    (
        "remote_write: [{url: 'http://a', write_relabel_configs: [{action: replace, source_labels: [a]}]}]",
        "1:58",
        "write_relabel_configs[0]: relabel configuration for replace action requires 'target_label' value",
    ),
    (
        "remote_write: [{url: 'http://a', write_relabel_configs: [{action: keeep}]}]",
        "1:67",
        'unknown relabel action "keeep" (did you mean "keep"?)',
    ),
    (
        "remote_write: [{url: 'http://a', write_relabel_configs: [{regex: '(a', target_label: b}]}]",
        "1:66",
        "invalid regular expression '(a'",
    ),
    (
        "remote_write: [{url: 'http://a', write_relabel_configs: [{action: hashmod, target_label: b}]}]",
        "1:58",
        "relabel configuration for hashmod requires non-zero modulus",
    ),
    (
        "remote_write: [{url: 'http://a', write_relabel_configs: [{source_labels: [a-b], target_label: c}]}]",
        "1:74",
        '"a-b" is not a valid label name',
    ),
    (
        "remote_write: [{url: 'http://a/w'}, {url: 'http://a/w', headers: {X-A: b}}]",
        "1:43",
        "http://a/w is written to twice; give the entries distinct names",
    ),
    (
        "remote_write: [{url: '${RW_URL}'}]",
        "1:22",
        "remote_write: environment variable RW_URL is not set",
    ),
]


@pytest.mark.parametrize(("text", "where", "message"), CASES, ids=[c[2][:50] for c in CASES])
def test_mistakes_are_reported_where_they_were_written(text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    assert str(caught.value.pos) == f"alerting.yml:{where}", caught.value
    assert message in caught.value.message


def test_environment_references_are_expanded_with_defaults() -> None:
    (target,) = parse(
        "remote_write: [{url: '${RW_URL:-http://localhost:9090/api/v1/write}', name: '${RW_NAME}'}]",
        env={"RW_NAME": "local"},
    )
    assert (target.url, target.name) == ("http://localhost:9090/api/v1/write", "local")


def test_alerting_yml_carries_its_remote_write_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RW_TOKEN", "t0k3n")
    path = tmp_path / "alerting.yml"
    path.write_text(
        textwrap.dedent(
            """
            route: {receiver: team}
            receivers: [{name: team}]
            remote_write:
              - url: http://127.0.0.1:9090/api/v1/write
                authorization: {credentials: "${RW_TOKEN}"}
            """
        ).lstrip()
    )
    (target,) = load_config(path).remote_write
    assert target.http.authorization == Authorization("Bearer", "t0k3n")
    assert str(target.pos) == f"{path}:4:5"
    path.write_text(path.read_text().replace("url:", "ulr:"))
    with pytest.raises(ConfigError, match=r'alerting.yml:4:5: unknown field "ulr" in remote_write\[0\]'):
        load_config(path)


def test_a_file_without_remote_write_has_no_targets(tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text("route: {receiver: team}\nreceivers: [{name: team}]\n")
    assert load_config(path).remote_write == ()


def test_the_readme_example_loads() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Remote write") :]
    example = section[
        section.index("```yaml") + len("```yaml") : section.index("```\n", section.index("```yaml"))
    ]
    (target,) = parse(example)
    assert (target.name, target.queue.sample_age_limit, len(target.write_relabel_configs)) == (
        "central",
        600.0,
        1,
    )
