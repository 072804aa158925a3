/**
 * The process groups of a plugin's running children (each child leads its own with setsid):
 * signals go to the whole group, and what a child leaves running is killed with it.
 */
export class ProcessGroups {
  readonly #pids = new Set<number>();

  /** Records that the child `pid` leads a group. */
  add(pid: number): void {
    this.#pids.add(pid);
  }

  /** Forgets the group of `pid` (once it is killed: its number may be reused). */
  delete(pid: number): void {
    this.#pids.delete(pid);
  }

  /** SIGKILLs what is left of the group of `pid`, if it has one. */
  kill(pid: number): void {
    if (!this.#pids.has(pid)) return;
    try {
      Deno.kill(-pid, "SIGKILL");
    } catch { /* the group is empty */ }
  }

  /** SIGKILLs every group. */
  killAll(): void {
    for (const pid of this.#pids) this.kill(pid);
  }

  /** Sends `signal` to the group of `pid`, or to `proc` itself when it leads none (yet). */
  signal(pid: number, proc: Deno.ChildProcess, signal: Deno.Signal): boolean {
    if (this.#pids.has(pid)) {
      try {
        Deno.kill(-pid, signal);
        return true;
      } catch {
        // Just spawned, setsid has not made the group yet: signal the child itself (not yet
        // reaped, so its pid is still its own).
      }
    }
    try {
      proc.kill(signal);
      return true;
    } catch {
      return false;
    }
  }
}
