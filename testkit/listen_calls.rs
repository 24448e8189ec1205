//! The exact requests lull sends to show a user the bot is listening (`on_close = ["read",
//! "typing"]`, `docs/listening.md`), checked on a [`FakeApi`]: one place for the shapes that the
//! local server's and the Lambdas' tests both expect, each from its provider's documentation.
//!
//! - Evolution API v2.3 (its Postman collection, `Chat` folder): `POST
//!   /chat/markMessageAsRead/{instance}` with `{"readMessages":[{"remoteJid","fromMe":false,
//!   "id"}...]}` and `POST /chat/sendPresence/{instance}` with `{"number","presence":
//!   "composing","delay"}`, header `apikey`.
//! - WAHA (waha.devlike.pro, "Send messages"): `POST /api/sendSeen` with `{"session","chatId",
//!   "messageIds"}` and `POST /api/startTyping` with `{"session","chatId"}`, header `X-Api-Key`.

use serde_json::{json, Value};

use crate::fake_api::{FakeApi, Recorded};

fn body(r: &Recorded) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

/// Asserts `api` got exactly Evolution's two calls for one batch of `ids` from `user` on
/// `instance`: the read naming every id, the presence held `delay_ms`; both with `apikey: key`.
pub fn assert_evolution(
    api: &FakeApi,
    instance: &str,
    user: &str,
    ids: &[&str],
    key: &str,
    delay_ms: u64,
) {
    assert_eq!(api.requests().len(), 2, "{:#?}", api.requests());
    let read = api.only(&format!("/chat/markMessageAsRead/{instance}"));
    let typing = api.only(&format!("/chat/sendPresence/{instance}"));
    for call in [&read, &typing] {
        assert_eq!(call.method, "POST");
        assert_eq!(call.header("apikey"), Some(key));
        assert_eq!(call.header("content-type"), Some("application/json"));
    }
    let keys: Vec<Value> = ids
        .iter()
        .map(|id| json!({"remoteJid": user, "fromMe": false, "id": id}))
        .collect();
    assert_eq!(body(&read), json!({ "readMessages": keys }));
    assert_eq!(
        body(&typing),
        json!({"number": user, "presence": "composing", "delay": delay_ms})
    );
}

/// Asserts `api` got exactly WAHA's two calls for one batch of `ids` from `chat` in `session`:
/// `sendSeen` naming every id, and `startTyping`; both with `X-Api-Key: key`.
pub fn assert_waha(api: &FakeApi, session: &str, chat: &str, ids: &[&str], key: &str) {
    assert_eq!(api.requests().len(), 2, "{:#?}", api.requests());
    let seen = api.only("/api/sendSeen");
    let start = api.only("/api/startTyping");
    for call in [&seen, &start] {
        assert_eq!(call.method, "POST");
        assert_eq!(call.header("x-api-key"), Some(key));
        assert_eq!(call.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        body(&seen),
        json!({"session": session, "chatId": chat, "messageIds": ids})
    );
    assert_eq!(body(&start), json!({"session": session, "chatId": chat}));
}
