-- TaskMaster initial schema: pipelines, pipeline runs, tasks, task contexts and task logs
-- dbops:risk low
-- dbops:estimated-duration 5s

-- migrate:up
CREATE TABLE pipelines (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL,
    repository     text        NOT NULL,
    default_branch text        NOT NULL DEFAULT 'main',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_name_key UNIQUE (name)
);

CREATE TABLE pipeline_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id bigint      NOT NULL REFERENCES pipelines (id),
    status      text        NOT NULL DEFAULT 'pending',
    trigger     text        NOT NULL,
    commit_sha  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    CONSTRAINT pipeline_runs_status_check
        CHECK (status IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT pipeline_runs_trigger_check
        CHECK (trigger IN ('push', 'pull_request', 'tag', 'schedule', 'manual', 'api')),
    CONSTRAINT pipeline_runs_commit_sha_check
        CHECK (commit_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
    CONSTRAINT pipeline_runs_finished_after_started CHECK (finished_at >= started_at)
);

CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id bigint      NOT NULL REFERENCES pipelines (id),
    run_id      bigint               REFERENCES pipeline_runs (id),
    name        text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending',
    attempt     integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    CONSTRAINT tasks_status_check
        CHECK (status IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT tasks_finished_after_started CHECK (finished_at >= started_at)
);

CREATE TABLE task_contexts (
    task_id bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    key     text   NOT NULL,
    value   jsonb  NOT NULL,
    PRIMARY KEY (task_id, key)
);

CREATE TABLE task_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    bigint      NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    level      text        NOT NULL,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT task_logs_level_check CHECK (level IN ('debug', 'info', 'warn', 'error'))
);

CREATE INDEX pipeline_runs_pipeline_id_created_at_idx ON pipeline_runs (pipeline_id, created_at DESC);
CREATE INDEX pipeline_runs_status_idx ON pipeline_runs (status);
CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_pipeline_id_idx ON tasks (pipeline_id);
CREATE INDEX tasks_run_id_idx ON tasks (run_id);
CREATE INDEX task_logs_task_id_created_at_idx ON task_logs (task_id, created_at);

-- migrate:down
DROP TABLE task_logs;
DROP TABLE task_contexts;
DROP TABLE tasks;
DROP TABLE pipeline_runs;
DROP TABLE pipelines;
