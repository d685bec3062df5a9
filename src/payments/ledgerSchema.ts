/**
 * Versioned schema of the payment ledger. `PRAGMA user_version` holds the number of migrations applied; each
 * migration runs inside one SQLite transaction together with the version bump, so a crash never half-migrates.
 * Append new migrations at the end; never edit one that has shipped.
 *
 * Amounts are nanoTON stored as canonical decimal TEXT (no sign, no leading zeros) so values above 2^63 stay exact;
 * sums are kept in `totals` and updated with BigInt arithmetic in the same transaction as the row they count.
 */
import type Database from "better-sqlite3";

export const LEDGER_MIGRATIONS: readonly string[] = [
  // 1: initial layout
  `
  CREATE TABLE receipts (
    request_id        TEXT PRIMARY KEY,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nano         TEXT NOT NULL,     -- what the client pays
    worker_earn_nano  TEXT NOT NULL,     -- what the worker earns (cost - proxy fee)
    worker_id         TEXT NOT NULL,
    channel           TEXT NOT NULL,     -- client channel address, '' when unknown
    receipt           BLOB,              -- the signed receipt bytes, for audit
    started_at        INTEGER NOT NULL,  -- ms since epoch
    recorded_at       INTEGER NOT NULL
  );
  CREATE INDEX receipts_by_worker ON receipts (worker_id);
  CREATE INDEX receipts_by_channel ON receipts (channel);

  CREATE TABLE client_vouchers (
    channel        TEXT NOT NULL,
    cumulative_nano TEXT NOT NULL,
    cumulative_key TEXT NOT NULL,        -- zero-padded to 40 digits so that ORDER BY sorts numerically
    signature      BLOB NOT NULL,
    seq            INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    PRIMARY KEY (channel, cumulative_key)
  );

  CREATE TABLE payout_vouchers (
    worker         TEXT NOT NULL,
    cumulative_nano TEXT NOT NULL,
    cumulative_key TEXT NOT NULL,
    signature      BLOB NOT NULL,
    seq            INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    PRIMARY KEY (worker, cumulative_key)
  );

  CREATE TABLE settlements (
    tx_hash      TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,          -- redeem | payout | deposit | withdraw | fee
    counterparty TEXT NOT NULL,          -- channel address (redeem/deposit/withdraw) or worker address (payout)
    amount_nano  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
  );
  CREATE INDEX settlements_by_counterparty ON settlements (kind, counterparty);

  CREATE TABLE totals (
    name  TEXT NOT NULL,
    scope TEXT NOT NULL,                 -- '' = whole ledger, else a worker id / channel / worker address
    value TEXT NOT NULL,
    PRIMARY KEY (name, scope)
  );
  `,
  // 2: write-offs (answers a proxy charged that the client disputed: charged to no one, the proxy's loss) and the
  // per-channel order of receipts that reconciliation reads
  `
  CREATE TABLE write_offs (
    request_id  TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    amount_nano TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
  );
  CREATE INDEX receipts_by_channel_time ON receipts (channel, recorded_at);
  `,
];

export const LEDGER_SCHEMA_VERSION = LEDGER_MIGRATIONS.length;

/** Brings the database to the newest schema; refuses a database written by a newer program. */
export function migrateLedger(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > LEDGER_SCHEMA_VERSION) {
    throw new Error(`payment ledger schema version ${current} is newer than this program supports (${LEDGER_SCHEMA_VERSION}); upgrade cocoon before opening it`);
  }
  for (let v = current; v < LEDGER_SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(LEDGER_MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
