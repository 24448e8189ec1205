//! "The bot is listening": what a tenant asks lull to show the user when one of its windows
//! closes (the batch's messages marked read, the typing indicator), as the exact HTTP requests
//! of each messaging API. Pure: the shell (`lull_sink::Listening`) sends them, best effort,
//! beside the hand-off and never in its way.
//!
//! Once per batch, not per message: one closed window gives one set of requests, built from the
//! batch alone. The request shapes, each from its provider's own documentation or code:
//!
//! - Meta Cloud API (developers.facebook.com, "Typing indicators"): `POST
//!   {api_url}/{phone_number_id}/messages`, `Authorization: Bearer <access token>`, body
//!   `{"messaging_product":"whatsapp","status":"read","message_id":<last id>,
//!   "typing_indicator":{"type":"text"}}`. Marking the last message read marks the earlier ones
//!   read too; the indicator needs the read, so `typing` alone also marks read. Without `typing`
//!   the body has no `typing_indicator`.
//! - Evolution API v2 (its Postman collection, `Chat` folder; DTO `ReadMessageDto` in the code):
//!   `POST {api_url}/chat/markMessageAsRead/{instance}` with `{"readMessages":[{"remoteJid",
//!   "fromMe":false,"id"}...]}` and `POST {api_url}/chat/sendPresence/{instance}` with
//!   `{"number":<remoteJid>,"presence":"composing","delay":<ms>}`; header `apikey`.
//!   Evolution holds the presence for `delay` and answers after it.
//! - WAHA (waha.devlike.pro, "Send messages": `POST /api/sendSeen`, `POST /api/startTyping`):
//!   `{"session","chatId","messageIds":[...]}` and `{"session","chatId"}`; header `X-Api-Key`.
//!
//! Twilio and the generic format have no such call here: a tenant asking for them gets nothing
//! sent for those conversations (counted as `unsupported`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Batch, MessageKind, Millis, Provider};

/// Meta's Graph API base, with the version (the docs' current one); `meta.api_url` changes it.
pub const META_API_URL: &str = "https://graph.facebook.com/v26.0";

/// How long Evolution shows "typing..." (its `delay`, in ms): it answers after this.
pub const EVOLUTION_TYPING_MS: u64 = 3000;

/// How long after its window closed a batch is still worth a sign: Meta dismisses a typing
/// indicator after 25 s, so a later one (a batch redriven from parking, a hand-off retried for
/// long) would tell the user nothing true about now.
pub const LATE_AFTER_MS: u64 = 25_000;

/// What a tenant shows when a window closes (`on_close = ["read", "typing"]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnClose {
    /// Mark the batch's messages read (blue ticks).
    pub read: bool,
    /// Show the typing indicator.
    pub typing: bool,
}

/// An `on_close` value lull does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of: read, typing")]
pub struct UnknownAction(pub String);

impl OnClose {
    /// Parses a list of action names (`read`, `typing`); an empty list is off.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<OnClose, UnknownAction> {
        let mut out = OnClose::default();
        for n in names {
            match n.trim() {
                "read" => out.read = true,
                "typing" => out.typing = true,
                other => return Err(UnknownAction(other.to_string())),
            }
        }
        Ok(out)
    }

    pub fn is_off(&self) -> bool {
        !self.read && !self.typing
    }
}

/// Where one messaging API is reached and the credential it takes (a tenant secret).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiAccess {
    /// The base URL, without a trailing `/` (self-hosted Evolution/WAHA; Meta's Graph API).
    pub api_url: String,
    pub token: String,
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiAccess({}, token redacted)", self.api_url)
    }
}

/// A tenant's whole "listening" setting: what to show and, per provider, how to reach its API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listen {
    pub on_close: OnClose,
    pub meta: Option<ApiAccess>,
    pub evolution: Option<ApiAccess>,
    pub waha: Option<ApiAccess>,
}

/// One request to send: POST `url` with one credential header and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenRequest {
    /// `read`, `typing` or `read+typing` (Meta's one call): the metric label.
    pub action: &'static str,
    pub url: String,
    pub header: (&'static str, String),
    pub body: Value,
    /// Extra time the API takes to answer by design (Evolution's presence `delay`).
    pub holds_ms: u64,
}

/// Why a batch gets no requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The tenant shows nothing.
    Off,
    /// The provider has no such call (Twilio, generic).
    Unsupported,
    /// The tenant set no API access for this provider.
    NoAccess,
    /// The batch holds no message that can be marked (only edits and unsends).
    NoMessage,
    /// The window closed more than [`LATE_AFTER_MS`] ago.
    Late,
}

impl Skip {
    pub fn as_str(&self) -> &'static str {
        match self {
            Skip::Off => "off",
            Skip::Unsupported => "unsupported",
            Skip::NoAccess => "no_access",
            Skip::NoMessage => "no_message",
            Skip::Late => "late",
        }
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path)
}

/// The requests that show `batch`'s user the bot is listening at `now`, or why there are none.
pub fn requests(listen: &Listen, batch: &Batch, now: Millis) -> Result<Vec<ListenRequest>, Skip> {
    let on = listen.on_close;
    if on.is_off() {
        return Err(Skip::Off);
    }
    if now.0.saturating_sub(batch.closed_at.0) > LATE_AFTER_MS {
        return Err(Skip::Late);
    }
    // Edits and unsends name earlier messages; their own ids are not messages to mark.
    let ids: Vec<&str> = batch
        .messages
        .iter()
        .filter(|m| !matches!(m.kind, MessageKind::Edit | MessageKind::Revoke))
        .map(|m| m.id.as_str())
        .collect();
    let c = &batch.conversation;
    let access = match c.provider {
        Provider::Meta => listen.meta.as_ref(),
        Provider::Evolution => listen.evolution.as_ref(),
        Provider::Waha => listen.waha.as_ref(),
        Provider::Twilio | Provider::Generic => return Err(Skip::Unsupported),
    }
    .ok_or(Skip::NoAccess)?;
    let Some(last) = ids.last().copied() else {
        return Err(Skip::NoMessage);
    };
    let mut out = Vec::new();
    match c.provider {
        Provider::Meta => {
            let mut body = json!({
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": last,
            });
            if on.typing {
                body["typing_indicator"] = json!({"type": "text"});
            }
            out.push(ListenRequest {
                action: if on.typing { "read+typing" } else { "read" },
                url: join(&access.api_url, &format!("{}/messages", c.account)),
                header: ("authorization", format!("Bearer {}", access.token)),
                body,
                holds_ms: 0,
            });
        }
        Provider::Evolution => {
            let header = ("apikey", access.token.clone());
            if on.read {
                let keys: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"remoteJid": c.user, "fromMe": false, "id": id}))
                    .collect();
                out.push(ListenRequest {
                    action: "read",
                    url: join(
                        &access.api_url,
                        &format!("chat/markMessageAsRead/{}", c.account),
                    ),
                    header: header.clone(),
                    body: json!({ "readMessages": keys }),
                    holds_ms: 0,
                });
            }
            if on.typing {
                out.push(ListenRequest {
                    action: "typing",
                    url: join(&access.api_url, &format!("chat/sendPresence/{}", c.account)),
                    header,
                    body: json!({
                        "number": c.user,
                        "presence": "composing",
                        "delay": EVOLUTION_TYPING_MS,
                    }),
                    holds_ms: EVOLUTION_TYPING_MS,
                });
            }
        }
        Provider::Waha => {
            let header = ("x-api-key", access.token.clone());
            if on.read {
                out.push(ListenRequest {
                    action: "read",
                    url: join(&access.api_url, "api/sendSeen"),
                    header: header.clone(),
                    body: json!({"session": c.account, "chatId": c.user, "messageIds": ids}),
                    holds_ms: 0,
                });
            }
            if on.typing {
                out.push(ListenRequest {
                    action: "typing",
                    url: join(&access.api_url, "api/startTyping"),
                    header,
                    body: json!({"session": c.account, "chatId": c.user}),
                    holds_ms: 0,
                });
            }
        }
        Provider::Twilio | Provider::Generic => return Err(Skip::Unsupported),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CloseReason, ConversationKey, Message};

    /// Just after the test batches' window closed.
    const NOW: Millis = Millis(1500);

    fn batch(provider: Provider, account: &str, user: &str, ids: &[&str]) -> Batch {
        Batch::new(
            uuid::Uuid::now_v7(),
            ConversationKey::new(provider, account, user),
            1,
            CloseReason::Quiet,
            Millis(0),
            Millis(1000),
            false,
            ids.iter()
                .map(|id| Message::text(*id, user, "hi"))
                .collect(),
        )
    }

    fn access(url: &str) -> Option<ApiAccess> {
        Some(ApiAccess {
            api_url: url.into(),
            token: "tok".into(),
        })
    }

    fn both() -> OnClose {
        OnClose {
            read: true,
            typing: true,
        }
    }

    #[test]
    fn meta_marks_the_last_message_read_with_the_indicator_in_one_call() {
        let listen = Listen {
            on_close: both(),
            meta: access("https://graph.example/v26.0/"),
            ..Default::default()
        };
        let b = batch(Provider::Meta, "1065", "15551234", &["wamid.A", "wamid.B"]);
        let r = requests(&listen, &b, NOW).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].url, "https://graph.example/v26.0/1065/messages");
        assert_eq!(r[0].header, ("authorization", "Bearer tok".to_string()));
        assert_eq!(
            r[0].body,
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.B",
                   "typing_indicator": {"type": "text"}})
        );
        let read_only = Listen {
            on_close: OnClose {
                read: true,
                typing: false,
            },
            ..listen
        };
        let r = requests(&read_only, &b, NOW).unwrap();
        assert!(r[0].body.get("typing_indicator").is_none());
    }

    #[test]
    fn evolution_and_waha_get_one_read_call_for_all_ids_and_one_typing_call() {
        let listen = Listen {
            on_close: both(),
            evolution: access("http://evo:8080"),
            waha: access("http://waha:3000"),
            ..Default::default()
        };
        let b = batch(
            Provider::Evolution,
            "inst",
            "55119@s.whatsapp.net",
            &["A", "B"],
        );
        let r = requests(&listen, &b, NOW).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].url, "http://evo:8080/chat/markMessageAsRead/inst");
        assert_eq!(r[0].body["readMessages"].as_array().unwrap().len(), 2);
        assert_eq!(r[0].body["readMessages"][1]["id"], "B");
        assert_eq!(r[1].url, "http://evo:8080/chat/sendPresence/inst");
        assert_eq!(r[1].body["presence"], "composing");
        let b = batch(Provider::Waha, "default", "1@c.us", &["true_1@c.us_X"]);
        let r = requests(&listen, &b, NOW).unwrap();
        assert_eq!(r[0].url, "http://waha:3000/api/sendSeen");
        assert_eq!(r[0].header.0, "x-api-key");
        assert_eq!(
            r[0].body,
            json!({"session": "default", "chatId": "1@c.us", "messageIds": ["true_1@c.us_X"]})
        );
        assert_eq!(r[1].url, "http://waha:3000/api/startTyping");
    }

    #[test]
    fn nothing_is_sent_when_off_unsupported_without_access_or_without_a_message() {
        let mut listen = Listen::default();
        let b = batch(Provider::Meta, "1", "2", &["m"]);
        assert_eq!(requests(&listen, &b, NOW), Err(Skip::Off));
        listen.on_close = both();
        assert_eq!(requests(&listen, &b, NOW), Err(Skip::NoAccess));
        let t = batch(Provider::Twilio, "+1", "+2", &["SM1"]);
        assert_eq!(requests(&listen, &t, NOW), Err(Skip::Unsupported));
        listen.meta = access("http://x");
        let mut edit = batch(Provider::Meta, "1", "2", &["e"]);
        edit.messages[0].kind = MessageKind::Edit;
        assert_eq!(requests(&listen, &edit, NOW), Err(Skip::NoMessage));
        // A batch handed off long after its window closed (redriven from parking): no sign.
        let late = Millis(b.closed_at.0 + LATE_AFTER_MS + 1);
        assert_eq!(requests(&listen, &b, late), Err(Skip::Late));
        assert!(requests(&listen, &b, Millis(b.closed_at.0 + LATE_AFTER_MS)).is_ok());
    }

    #[test]
    fn on_close_names_are_checked() {
        assert_eq!(OnClose::parse(["read", "typing"]).unwrap(), both());
        assert_eq!(
            OnClose::parse(["typo"]),
            Err(UnknownAction("typo".to_string()))
        );
        assert!(OnClose::parse([]).unwrap().is_off());
    }
}
