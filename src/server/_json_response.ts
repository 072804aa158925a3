/** A JSON answer with the gateway's headers: never cached, and carrying the request id. */
export function jsonResponse(status: number, body: unknown, requestId: string): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-request-id": requestId,
    },
  });
}

/** The gateway's error answer, `{"error": {"code", "message"}}`, with the status's headers. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  requestId: string,
  headers: Readonly<Record<string, string>>,
): Response {
  const response = jsonResponse(status, { error: { code, message } }, requestId);
  for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
  return response;
}
