// join.js: the front door's join API, and what its answers mean to a person.

/** A refused or failed join; `retryable` says whether trying again later can help. */
export class JoinError extends Error {
  constructor(code, message, { status = 0, retryAfter = null, retryable = false } = {}) {
    super(message);
    this.name = "JoinError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
    this.retryable = retryable;
  }
}

const RETRYABLE = new Set([
  "network", "rate_limited", "no_capacity", "etcd_unavailable", "no_topology",
  "no_secrets", "room_unavailable",
]);

/** Words for a join refusal (the API's own `message` is for operators, not people). */
export function describeJoinError(code, body) {
  switch (code) {
    case "no_capacity":
      return `No meeting server in your jurisdiction${body?.jurisdictions ? ` (${body.jurisdictions.join(", ")})` : ""} has capacity right now. Retrying…`;
    case "room_outside_jurisdiction":
      return `This room is hosted in ${body?.room_jurisdiction ?? "another jurisdiction"}, ` +
        `outside your jurisdiction (${body?.client_jurisdiction ?? "restricted"}): you cannot join it.`;
    case "rate_limited":
      return "Too many joins from your network. Waiting a moment before trying again…";
    case "invalid_room":
      return "This room name is not valid: use 1–64 letters, digits, '_' or '-'.";
    case "invalid_request":
      return "The meeting options in the address are not valid (check name, size and policy).";
    case "network":
      return "The meeting service cannot be reached. Retrying…";
    default:
      return "The meeting service is not ready to place this room. Retrying…";
  }
}

/** POST /v1/rooms/{room}/join; resolves to the join answer or throws a JoinError. */
export async function joinRoom(room, { name, policy, size, rejoin } = {}) {
  const body = {};
  if (name) body.name = name;
  if (policy) body.policy = policy;
  if (size) body.size = size;
  // A previous token of this room: the front door keeps our participant id, so the router
  // replaces our stale session instead of counting us twice.
  if (rejoin) body.rejoin = rejoin;
  let response;
  try {
    response = await fetch(`/v1/rooms/${encodeURIComponent(room)}/join`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new JoinError("network", describeJoinError("network"), { retryable: true });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok || !data || data.error) {
    const code = data?.error ?? `http_${response.status}`;
    const retryAfter = Number(response.headers.get("retry-after")) || null;
    throw new JoinError(code, describeJoinError(code, data), {
      status: response.status,
      retryAfter,
      retryable: RETRYABLE.has(code) || response.status >= 500,
    });
  }
  return data;
}

/** RTCPeerConnection configuration from a join answer. */
export function rtcConfiguration(answer, relayOnly) {
  return {
    iceServers: (answer.ice_servers ?? []).map((s) => ({
      urls: s.urls, username: s.username, credential: s.credential,
    })),
    iceTransportPolicy: relayOnly ? "relay" : "all",
    bundlePolicy: "max-bundle",
    rtcpMuxPolicy: "require",
  };
}

/**
 * What the page may show about its ICE servers: the region each TURN credential was minted for
 * (the REST username is `expiry:region:participant`) and the transports, never an address.
 */
export function describeIceServers(answer) {
  return (answer.ice_servers ?? []).map((s) => {
    const urls = Array.isArray(s.urls) ? s.urls : [s.urls];
    const parts = String(s.username ?? "").split(":");
    return Object.freeze({
      region: parts.length >= 3 ? parts[1] : null,
      schemes: [...new Set(urls.map((u) => u.split(":", 1)[0]))],
      transports: [...new Set(urls.map((u) => (/transport=(\w+)/.exec(u) ?? [null, "udp"])[1]))],
    });
  });
}
