// jobdesk.js: follow one job or group from a browser page with a view token.
// No framework, no build step: <script type="module"> import { watchJob } from ".../static/jobdesk.js".
//
// The host application's backend asks jobdesk for a view token (create_view_token) and
// hands the page the stream's URL and the token. The browser's EventSource reconnects by
// itself, sending Last-Event-ID; the server answers a finished job or group with 204,
// which stops it. A stream opened by a view token ends when the token expires (an "end"
// event): ask the backend for a new token and watch again.

function follow(url, token, kinds, onUpdate, onEnd) {
  const address = new URL(url, window.location.href);
  address.searchParams.set("view_token", token);
  const source = new EventSource(address);
  let finished = false;
  const close = (reason) => {
    if (finished) return;
    finished = true;
    source.close();
    if (onEnd) onEnd(reason);
  };
  for (const kind of kinds) {
    source.addEventListener(kind, (event) => {
      const state = JSON.parse(event.data);
      onUpdate({ event: kind, ...state });
    });
  }
  source.addEventListener("end", (event) => close(JSON.parse(event.data).reason));
  // EventSource stops for good (readyState CLOSED) on a 204, a 4xx or a 5xx answer.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) close("closed");
  });
  return { close: () => close("closed by the page") };
}

/**
 * Follow one job: onUpdate({event: "job", id, status, progress, progress_message, ...})
 * at each change. url: the job's events URL (https://host/api/v1/jobs/<id>/events).
 * Returns {close()}. onEnd(reason) when it stops: "expired", "closed"...
 */
export function watchJob(url, token, onUpdate, onEnd) {
  return follow(url, token, ["job"], onUpdate, onEnd);
}

/**
 * Follow one group: onUpdate({event: "group", id, status, progress, size, counts}) and
 * onUpdate({event: "job", ...}) for each of its jobs' changes. url: the group's events
 * URL (https://host/api/v1/groups/<id>/events). Returns {close()}.
 */
export function watchGroup(url, token, onUpdate, onEnd) {
  return follow(url, token, ["group", "job"], onUpdate, onEnd);
}
