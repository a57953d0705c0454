/**
 * The client end to end against a running server: create, stream, cancel, retry, and
 * the 429 / 409 / 404 / 422 problems read by their typed fields. CI runs it against a
 * real `jobdesk serve` (tests/acceptance/test_typescript_client.py); it prints one JSON
 * line of what it saw and exits non-zero on the first surprise.
 *
 *   JOBDESK_URL=http://127.0.0.1:8000 JOBDESK_USER_TOKEN=jdu_... \
 *   JOBDESK_WORKER_TOKEN=jdw_... JOBDESK_LIMITED_USER_TOKEN=jdu_... node dist/example.js
 */
import { createJobdeskClient, isProblem, type Job, type JobState, watchJob } from "./index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`set ${name}`);
  }
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`unexpected: ${what}`);
  }
}

const base = env("JOBDESK_URL");
const user = createJobdeskClient(base, env("JOBDESK_USER_TOKEN"));
const worker = createJobdeskClient(base, env("JOBDESK_WORKER_TOKEN"));
const limited = createJobdeskClient(base, env("JOBDESK_LIMITED_USER_TOKEN"));
const TYPE = "character_extraction";

// Create: only `type` and `input`; `priority`, `project_id`... have server defaults.
const created = await user.POST("/api/v1/jobs", {
  body: { type: TYPE, input: { episode_ids: ["ep-1", "ep-2"] } },
});
check(created.data !== undefined, `create answered ${created.response.status}`);
const job: Job = created.data;
check(job.status === "pending" && job.error === null, "a new job is pending, without error");

// Stream: every state of the job until it ends.
const seen: JobState[] = [];
const watch = watchJob(user, job.id, (state) => seen.push(state));

// A worker takes it and reports progress.
const claim = await worker.POST("/api/v1/worker/jobs/claim", { body: { types: [TYPE] } });
check(claim.data !== undefined, `claim answered ${claim.response.status}`);
const claimed = claim.data.find((item) => item.id === job.id);
check(claimed !== undefined, "the worker claimed the job");
const progress = await worker.POST("/api/v1/worker/jobs/{id}/progress", {
  params: { path: { id: job.id } },
  body: { progress: 50, message: "1 of 2 episodes", attempt: claimed.attempt },
});
check(progress.data?.cancel_requested === false, "not cancelled yet");

// Cancel: the stream ends with the cancelled state; the worker's next write is refused.
const cancelled = await user.POST("/api/v1/jobs/{id}/cancel", { params: { path: { id: job.id } } });
check(cancelled.data?.status === "cancelled", "cancelled at once");
const last = await watch.done;
check(last?.status === "cancelled", `the stream ended on ${last?.status}`);
const late = await worker.POST("/api/v1/worker/jobs/{id}/complete", {
  params: { path: { id: job.id } },
  body: { result: { characters: ["Ada"] }, attempt: claimed.attempt },
});
check(
  isProblem(late.error, "urn:jobdesk:problem:lease-lost") ||
    isProblem(late.error, "urn:jobdesk:problem:invalid-transition"),
  "a late completion is refused",
);

// Retry: pending again; retrying a pending job is a 409 that says why.
const retried = await user.POST("/api/v1/jobs/{id}/retry", { params: { path: { id: job.id } } });
check(retried.data?.status === "pending", "retried");
const twice = await user.POST("/api/v1/jobs/{id}/retry", { params: { path: { id: job.id } } });
check(isProblem(twice.error, "urn:jobdesk:problem:invalid-transition"), "409 invalid-transition");
const conflict = { job_status: twice.error.job_status, action: twice.error.action };

// 404: another user's job, or none, looks the same.
const missing = await user.GET("/api/v1/jobs/{id}", {
  params: { path: { id: "01M96TYYF79SHNHJF97T95GVE8" } },
});
check(isProblem(missing.error, "urn:jobdesk:problem:job-not-found"), "404 job-not-found");

// 422: the field and the rule.
const invalid = await user.POST("/api/v1/jobs", {
  body: { type: TYPE, input: {}, priority: 5000 },
});
check(isProblem(invalid.error, "urn:jobdesk:problem:invalid-input"), "422 invalid-input");
const refusedField = invalid.error.errors[0]?.field;

// 429: a user who may hold one pending job asks for a second.
let refused: { limit: "waiting" | "daily"; allowed: number; retry_after: number | null } | null =
  null;
let retryAfterHeader: string | null = null;
for (let i = 0; i < 2 && refused === null; i++) {
  const answer = await limited.POST("/api/v1/jobs", { body: { type: TYPE, input: { i } } });
  if (isProblem(answer.error, "urn:jobdesk:problem:rate-limited")) {
    const { limit, allowed, retry_after } = answer.error;
    refused = { limit, allowed, retry_after };
    retryAfterHeader = answer.response.headers.get("Retry-After");
  }
}
check(refused !== null, "429 rate-limited");

console.log(
  JSON.stringify({
    job: job.id,
    states: seen.map((state) => state.status),
    progress: seen.map((state) => state.progress),
    conflict,
    missing: missing.error.status,
    invalid: refusedField,
    refused,
    retryAfterHeader,
  }),
);
