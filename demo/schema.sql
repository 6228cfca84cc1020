-- Demo application database: the tables the shipped SQL rules (rules/app/) read.
--
-- Portable DDL: the same file runs on SQLite and PostgreSQL. Times are unix seconds in BIGINT
-- columns, so the rules compare them with the :now_unix bind parameter without any
-- dialect-specific date functions, and a backtest at a past slot sees the same rows.
-- Ids are text (UUIDs in the demo); rows written by the demo's fault injection use ids that
-- start with "fault-" so switching a fault off removes exactly what it added.

-- Human approvals of AI-proposed actions (spec 003: "Approval queue stale").
CREATE TABLE IF NOT EXISTS approvals (
    id          TEXT PRIMARY KEY,
    action      TEXT NOT NULL,              -- what is waiting for approval, e.g. categorize_transaction
    status      TEXT NOT NULL,              -- pending | approved | rejected
    requested_by TEXT,
    created_at  BIGINT NOT NULL,            -- unix seconds, when the approval was requested
    decided_at  BIGINT                      -- unix seconds, NULL while pending
);
CREATE INDEX IF NOT EXISTS approvals_status_created ON approvals (status, created_at);

-- One row per call to an LLM provider (spec 003: "Claude API errors", "Claude daily spend").
CREATE TABLE IF NOT EXISTS llm_calls (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,            -- anthropic, openai, ...
    model         TEXT NOT NULL,
    status        TEXT NOT NULL,            -- ok | error
    error         TEXT,                     -- provider error class when status = 'error'
    latency_ms    INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL           -- unix seconds
);
CREATE INDEX IF NOT EXISTS llm_calls_provider_created ON llm_calls (provider, created_at);

-- One row per automation run by the Celery workers (spec 003: "Automation failure rate").
CREATE TABLE IF NOT EXISTS automation_runs (
    id              TEXT PRIMARY KEY,
    automation_type TEXT NOT NULL,          -- accounting, crm, ...
    action          TEXT NOT NULL,
    status          TEXT NOT NULL,          -- running | success | failed
    error           TEXT,
    trace_id        TEXT,
    started_at      BIGINT NOT NULL,        -- unix seconds
    finished_at     BIGINT                  -- unix seconds, NULL while running
);
CREATE INDEX IF NOT EXISTS automation_runs_finished ON automation_runs (finished_at);

-- Webhooks received from Odoo and their processing (spec 003: "Webhook processing lag").
CREATE TABLE IF NOT EXISTS webhook_events (
    id           TEXT PRIMARY KEY,
    model        TEXT NOT NULL,             -- Odoo model, e.g. account.move
    event_type   TEXT NOT NULL,
    trace_id     TEXT,
    received_at  BIGINT NOT NULL,           -- unix seconds
    processed_at BIGINT                     -- unix seconds, NULL until processed
);
CREATE INDEX IF NOT EXISTS webhook_events_received ON webhook_events (received_at);
