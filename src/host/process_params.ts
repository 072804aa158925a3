import { z } from "zod";
import { CHILD_SIGNALS } from "../sdk/host_client.ts";
import { ProcessServiceError } from "./process_service_error.ts";

/**
 * The params of the `host/process.*` requests, checked at the boundary: a plugin may send
 * anything, the SDK's shapes or not.
 *
 * @module
 */

const MAX_TIMER_MS = 2 ** 31 - 1;

const Argv = {
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(128 * 1024)).max(1024).default([]),
  stdin: z.string().max(1024 * 1024, "at most 1 Mi characters").optional(),
};
export const ExecParams = z.strictObject({
  ...Argv,
  timeout_ms: z.number().int().positive().max(MAX_TIMER_MS).optional(),
});
export const SpawnParams = z.strictObject(Argv);
export const IdParams = z.strictObject({ id: z.number().int().positive() });
export const KillParams = z.strictObject({
  id: z.number().int().positive(),
  signal: z.enum(CHILD_SIGNALS).default("SIGTERM"),
});
export const ListParams = z.strictObject({}).optional().nullable();

/** `params` checked by `schema`, or `PROCESS_INVALID_PARAMS` naming each bad field. */
export function parse<T>(schema: z.ZodType<T>, params: unknown, op: string): T {
  const result = schema.safeParse(params ?? undefined);
  if (result.success) return result.data;
  const issues = result.error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "params"}: ${i.message}`)
    .join("; ");
  throw new ProcessServiceError(
    "PROCESS_INVALID_PARAMS",
    `host/process.${op}: invalid params: ${issues}`,
  );
}
