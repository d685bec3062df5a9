// Process lifecycle shared by every long-running command: tell a parent (devnet) we are ready,
// and stop cleanly on Ctrl-C / SIGTERM.

/** Prints the human line, and sends the machine-readable one to a parent process over IPC if any. */
export function reportReady(info: Record<string, unknown>, line: string): void {
  console.log(line);
  if (process.send) process.send({ type: "ready", ...info });
}

export async function serveUntilSignal(stop: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      console.error(`received ${sig}, stopping (press Ctrl-C again to force)`);
      const force = setTimeout(() => process.exit(1), 5_000);
      force.unref();
      stop().then(resolve, (err) => {
        console.error(`error while stopping: ${(err as Error).message}`);
        resolve();
      });
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    // A devnet parent that dies takes its children with it.
    process.on("disconnect", () => onSignal("parent exit"));
  });
  process.exit(0);
}
