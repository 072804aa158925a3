import assert from "node:assert/strict";
import { guardStraySocketErrors, isStraySocketError } from "./_stray_socket_errors.ts";

const socketError = (code: string, syscall: string) =>
  Object.assign(new Error(`${syscall} ${code}`), { code, errno: -104, syscall });

Deno.test("isStraySocketError() tells a socket's read or write errno from any other error", () => {
  assert.ok(isStraySocketError(socketError("ECONNRESET", "read")));
  assert.ok(isStraySocketError(socketError("EPIPE", "write")));
  assert.ok(!isStraySocketError(socketError("ECONNREFUSED", "connect")));
  assert.ok(!isStraySocketError(socketError("ENOENT", "read")));
  assert.ok(!isStraySocketError(new Error("read ECONNRESET")));
  assert.ok(!isStraySocketError({ code: "ECONNRESET", syscall: "read" }));
});

Deno.test("guardStraySocketErrors() keeps a socket error nobody listens for from failing the process", async () => {
  guardStraySocketErrors();
  guardStraySocketErrors(); // once is enough; twice is harmless
  // As a socket whose listeners were removed throws it: from a callback, uncaught. Without the
  // guard, the test runner reports an uncaught error and this test fails.
  setTimeout(() => {
    throw socketError("ECONNRESET", "read");
  }, 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
});
