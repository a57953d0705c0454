/**
 * A typed client for the jobdesk HTTP API.
 *
 * `schema.d.ts` is generated from a server's `/openapi.json` by openapi-typescript
 * (`npm run generate`); requests go through openapi-fetch, so every path, body and
 * answer is typed by the server's own schema. Each problem type of the API has its
 * own schema: `isProblem(error, "urn:jobdesk:problem:rate-limited")` narrows an error
 * to the 429's `limit` / `allowed` / `retry_after`, and so on.
 *
 * No framework: `watchJob(client, id, onUpdate)` follows one job's server-sent events
 * with `fetch` (which, unlike `EventSource`, can send the `Authorization` header).
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

/** A job as its owner sees it. */
export type Job = Schemas["JobOut"];
/** The state of a job after a change, as its event stream sends it. */
export type JobState = Schemas["JobStateEvent"];
/** What `POST /api/v1/jobs` takes: fields with a server default may be left out. */
export type NewJob = Schemas["CreateJobRequest"];

/** Every problem type the API documents, each with its own members. */
export type TypedProblem =
  | Schemas["InvalidInputProblem"]
  | Schemas["UnauthorizedProblem"]
  | Schemas["JobNotFoundProblem"]
  | Schemas["RateLimitedProblem"]
  | Schemas["InvalidTransitionProblem"]
  | Schemas["LeaseLostProblem"]
  | Schemas["StoreUnavailableProblem"];

/** Problem type URI -> its document: `ProblemOf<"urn:jobdesk:problem:rate-limited">`. */
export type ProblemByType = { [P in TypedProblem as P["type"]]: P };
export type ProblemType = keyof ProblemByType;
export type ProblemOf<T extends ProblemType> = ProblemByType[T];

/** Whether `error` (openapi-fetch's `error`, or anything) is a problem of `type`. */
export function isProblem<T extends ProblemType>(error: unknown, type: T): error is ProblemOf<T> {
  return (
    typeof error === "object" &&
    error !== null &&
    "type" in error &&
    (error as { type: unknown }).type === type
  );
}

export type JobdeskClient = Client<paths>;

/** A client for the server at `baseUrl`, acting with a user (or worker) token. */
export function createJobdeskClient(
  baseUrl: string,
  token: string,
  fetchImpl: typeof fetch = globalThis.fetch,
): JobdeskClient {
  return createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${token}` },
    fetch: fetchImpl,
  });
}

const FINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** A job's watch: stop it, or await its end (the last state seen). */
export interface JobWatch {
  stop(): void;
  readonly done: Promise<JobState | undefined>;
}

/**
 * Follow one job: `onUpdate` gets each new state (progress, message, status) until the
 * job ends, the server closes the stream, or `stop()` is called. For a progress bar:
 * `watchJob(client, id, (job) => { bar.value = job.progress; })`.
 */
export function watchJob(
  client: JobdeskClient,
  id: string,
  onUpdate: (state: JobState) => void,
): JobWatch {
  const controller = new AbortController();
  const done = (async (): Promise<JobState | undefined> => {
    const { response, error } = await client.GET("/api/v1/jobs/{id}/events", {
      params: { path: { id } },
      parseAs: "stream",
      signal: controller.signal,
    });
    if (error !== undefined) {
      throw Object.assign(new Error(`watching job ${id}: ${response.status}`), { problem: error });
    }
    if (response.status === 204 || response.body === null) {
      return undefined; // already final
    }
    let last: JobState | undefined;
    try {
      for await (const event of serverSentEvents(response.body)) {
        if (event.event !== "job") {
          continue;
        }
        last = JSON.parse(event.data) as JobState;
        onUpdate(last);
        if (FINAL.has(last.status)) {
          break;
        }
      }
    } catch (reason) {
      if (!controller.signal.aborted) {
        throw reason;
      }
    } finally {
      controller.abort();
    }
    return last;
  })();
  return { stop: () => controller.abort(), done };
}

/** One server-sent event. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** The events of a `text/event-stream` body (the WHATWG parsing rules, minus `retry`). */
export async function* serverSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  let id: string | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) {
          yield { event, data: data.join("\n"), ...(id === undefined ? {} : { id }) };
        }
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) {
        continue; // a comment: keep-alive
      }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") {
        event = value;
      } else if (field === "data") {
        data.push(value);
      } else if (field === "id") {
        id = value;
      }
    }
  }
}
