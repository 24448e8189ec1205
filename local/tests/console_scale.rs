//! The console's list queries on a store of 100,000 conversations: each page is a range of the
//! partial due index (SQLite's own query plan says so: `EXPLAIN QUERY PLAN`), never a scan of
//! the table, and keyset pages go on from where the previous one stopped, without overlap.
//! Nothing here is timed (a shared machine's timings prove nothing); the plan is the claim.

use lull_core::window::PARKED;
use lull_core::{Conversation, ConversationKey, Message, Millis, Policy, Provider};
use lull_local::store::{db_path, CONSOLE_DUE_PAGE, CONSOLE_PARKED_PAGE};
use lull_local::{Durability, SqliteStore};
use rusqlite::{params, Connection};

const CONVERSATIONS: usize = 100_000;

fn key(i: usize) -> ConversationKey {
    ConversationKey::new(
        Provider::Meta,
        format!("10654035224{:04}", i % 7),
        format!("5511{i:09}"),
    )
}

/// Seeds the table in one transaction of real records: 40% idle (not in the index), 1%
/// parked, the rest with an open window due at a spread of times.
fn seed(dir: &std::path::Path) {
    drop(SqliteStore::open(dir, Durability::Normal).expect("schema"));
    let mut conn = Connection::open(db_path(dir)).expect("open");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO conversations (key, ver, due_at, record) VALUES (?1, ?2, ?3, ?4)")
            .expect("prepare");
        let mut n = 0u64;
        let mut rnd = || {
            n += 1;
            n
        };
        for i in 0..CONVERSATIONS {
            let now = Millis(1_800_000_000_000 + (i as u64 * 7_919) % 3_600_000);
            let conv = Conversation::fresh(key(i), now)
                .plan_append(
                    Message::text(format!("m{i}"), "u", "hi"),
                    &Policy::default(),
                    now,
                    &mut rnd,
                )
                .expect("append")
                .next;
            let due: Option<i64> = match i % 100 {
                0..=39 => None,
                40 => Some(PARKED.0 as i64),
                _ => conv.index_due().map(|m| m.0 as i64),
            };
            let json = serde_json::to_string(&conv).expect("json");
            insert
                .execute(params![conv.key.storage_key(), conv.ver as i64, due, json])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn plan(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(3))
        .expect("plan rows");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_read_the_due_index_in_ranges_on_100k_conversations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    seed(tmp.path());
    let conn = Connection::open(db_path(tmp.path())).expect("reader");
    let total: i64 = conn
        .query_row("SELECT count(*) FROM conversations", [], |r| r.get(0))
        .expect("count");
    assert_eq!(total as usize, CONVERSATIONS);

    // The plans: a search of the covering partial index; no scan of the table, no sort.
    let due = plan(
        &conn,
        CONSOLE_DUE_PAGE,
        params![PARKED.0 as i64, 0i64, "", 200i64],
    );
    println!("due page plan: {due}");
    assert!(
        due.contains("SEARCH conversations USING COVERING INDEX conversations_due"),
        "{due}"
    );
    assert!(
        !due.contains("SCAN") && !due.contains("TEMP B-TREE"),
        "{due}"
    );
    let parked = plan(
        &conn,
        CONSOLE_PARKED_PAGE,
        params![PARKED.0 as i64, "", 200i64],
    );
    println!("parked page plan: {parked}");
    assert!(
        parked.contains(
            "SEARCH conversations USING COVERING INDEX conversations_due (due_at=? AND key>?)"
        ),
        "{parked}"
    );
    assert!(
        !parked.contains("SCAN") && !parked.contains("TEMP B-TREE"),
        "{parked}"
    );

    // The pages themselves: 200 entries each, in (due_at, key) order, going on from the cursor
    // without overlap or gap, parked ones apart.
    let store = SqliteStore::open(tmp.path(), Durability::Normal).expect("store");
    let first = store.console_due_page(None, 200).await.expect("page 1");
    assert_eq!(first.len(), 200);
    assert!(first.windows(2).all(|w| w[0] < w[1]), "ordered");
    assert!(first.iter().all(|(d, _)| *d != PARKED.0));
    let last = first.last().cloned().expect("a last entry");
    let second = store
        .console_due_page(Some(last.clone()), 200)
        .await
        .expect("page 2");
    assert_eq!(second.len(), 200);
    assert!(second[0] > last, "the next page starts after the cursor");
    let expected: Vec<(u64, String)> = conn
        .prepare(
            "SELECT due_at, key FROM conversations WHERE due_at IS NOT NULL AND due_at < ?1 \
             ORDER BY due_at, key LIMIT 400",
        )
        .expect("prepare")
        .query_map(params![PARKED.0 as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!([first, second].concat(), expected);
    let parked_page = store.console_parked_page(None, 200).await.expect("parked");
    assert_eq!(parked_page.len(), 200);
    assert!(parked_page.iter().all(|(d, _)| *d == PARKED.0));
    let rest = store
        .console_parked_page(parked_page.last().map(|(_, k)| k.clone()), 5_000)
        .await
        .expect("parked rest");
    assert_eq!(
        parked_page.len() + rest.len(),
        CONVERSATIONS / 100,
        "every parked one, once"
    );
}
