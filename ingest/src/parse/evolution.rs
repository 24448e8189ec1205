//! Evolution API v2 webhooks (Baileys underneath).
//!
//! Only `messages.upsert` carries new messages; every other event (connection updates, message
//! receipts, presence...) is acknowledged and counted. The body names the instance, which is the
//! business side of the conversation key, so the dedupe key is instance + `key.id`.
//!
//! Identity: a one-to-one chat is keyed on `key.remoteJid`, except that with
//! `addressingMode: "lid"` (or a `@lid` JID) the phone JID in `key.remoteJidAlt` is preferred so
//! one user stays one conversation whichever addressing WhatsApp used; the other JID is kept as
//! `Sender.alt_id`. A group (`@g.us`) is one conversation; its author is `key.participant`
//! (again preferring `participantAlt` over a LID).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender};
use lull_core::{Message, MessageKind};

use super::{non_empty, unix_secs_raw, Item, OptIn, ParseError, Parsed};

// No `serde_json::Value` tree of the whole body: `data`, its records and each record's
// `message` are kept as raw slices of the body (borrowed, not copied), and only the one content
// object a message is read from becomes a `Value`. A `base64` media field of megabytes is never
// parsed at all.

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Baileys' `{messages: [...]}` shape of `data`; every other field is skipped unread.
#[derive(Deserialize)]
struct MessagesProbe<'a> {
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert<'a> {
    key: Key,
    #[serde(default)]
    push_name: Option<String>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default, borrow)]
    message_timestamp: Option<&'a RawValue>,
    #[serde(default, borrow)]
    context_info: Option<&'a RawValue>,
    /// The device the message was sent from, as Evolution reads it off the message id (Baileys'
    /// `getDevice`): `android`, `ios`, `desktop`, `web` or `unknown`. Messages sent through
    /// Evolution's API have Baileys' own ids, which read as `web`.
    #[serde(default)]
    source: Option<String>,
}

/// True for a `fromMe` message typed by a person on the business side: sent from the WhatsApp
/// app on a phone or desktop. Not `web`: the bot's own replies through Evolution's API carry
/// Baileys ids, which read as `web` (as does WhatsApp Web itself, which lull cannot tell apart),
/// nor `unknown`.
fn from_a_person(source: Option<&str>) -> bool {
    matches!(
        source.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("android" | "ios" | "desktop")
    )
}

#[derive(Deserialize)]
struct ContextInfo {
    #[serde(default, rename = "stanzaId")]
    stanza_id: Option<String>,
}

/// The elements of a raw JSON array, each still raw.
fn raw_array(raw: &RawValue) -> Result<Vec<&RawValue>, ParseError> {
    serde_json::from_str(raw.get()).map_err(|e| ParseError::json("evolution data", &e))
}

/// The first non-blank byte of a raw JSON value.
fn first_byte(raw: &RawValue) -> u8 {
    raw.get().trim_start().bytes().next().unwrap_or(b'n')
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Key {
    remote_jid: String,
    #[serde(default)]
    remote_jid_alt: Option<String>,
    #[serde(default)]
    from_me: Option<bool>,
    id: String,
    #[serde(default)]
    participant: Option<String>,
    #[serde(default)]
    participant_alt: Option<String>,
    #[serde(default)]
    addressing_mode: Option<String>,
}

/// Normalises an event name: `messages.upsert`, `MESSAGES_UPSERT` and `messages-upsert` (the
/// per-event URL suffix) are one event.
pub fn normalise_event(e: &str) -> String {
    e.trim().to_ascii_lowercase().replace(['_', '-'], ".")
}

/// Parses an Evolution webhook body; `path_event` is the per-event URL suffix, used when the
/// body names no event.
pub fn parse(body: &[u8], path_event: Option<&str>) -> Result<Parsed, ParseError> {
    let body: Body<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::json("evolution", &e))?;
    let instance = non_empty(body.instance.as_deref())
        .ok_or_else(|| ParseError::new("evolution: missing instance"))?;
    let event = body
        .event
        .as_deref()
        .or(path_event)
        .map(normalise_event)
        .ok_or_else(|| ParseError::new("evolution: missing event"))?;
    let mut out = Parsed::default();
    out.add_account(&instance);
    if event == "presence.update" {
        // Not a message: the route reads it with `parse::presence` when the tenant wants it.
        out.ignored.push("presence");
        return Ok(out);
    }
    if event != "messages.upsert" {
        out.ignored.push("event");
        return Ok(out);
    }
    // v2 sends one message object; accept an array (or Baileys' {messages: [...]}) too.
    let not_object = || ParseError::new("evolution messages.upsert: data is not an object");
    let data = body.data.ok_or_else(not_object)?;
    let records: Vec<&RawValue> = match first_byte(data) {
        b'[' => raw_array(data)?,
        b'{' => {
            let probe: MessagesProbe<'_> = serde_json::from_str(data.get())
                .map_err(|e| ParseError::json("evolution data", &e))?;
            match probe.messages {
                Some(m) if first_byte(m) == b'[' => raw_array(m)?,
                _ => vec![data],
            }
        }
        _ => return Err(not_object()),
    };
    for (i, record) in records.into_iter().enumerate() {
        let up: Upsert<'_> = serde_json::from_str(record.get())
            .map_err(|e| ParseError::json(&format!("evolution data[{i}]"), &e))?;
        let item = message(&instance, up)
            .map_err(|e| ParseError::new(format!("evolution data[{i}]: {e}")))?;
        out.items.push(item);
    }
    Ok(out)
}

/// The phone number of a `@s.whatsapp.net` JID (without a `:device` suffix).
fn phone_of(jid: &str) -> Option<String> {
    let user = jid.strip_suffix("@s.whatsapp.net")?;
    Some(user.split(':').next().unwrap_or(user).to_string())
}

fn is_lid(jid: &str, mode: Option<&str>) -> bool {
    jid.ends_with("@lid") || mode == Some("lid")
}

/// (key id, other id): prefer the phone JID over a LID.
fn prefer_phone(jid: String, alt: Option<String>, mode: Option<&str>) -> (String, Option<String>) {
    match alt {
        Some(alt) if is_lid(&jid, mode) && !alt.ends_with("@lid") => (alt, Some(jid)),
        Some(alt) if alt != jid => (jid, Some(alt)),
        _ => (jid, None),
    }
}

fn message(instance: &str, up: Upsert<'_>) -> Result<Item, String> {
    let k = up.key;
    if k.id.trim().is_empty() {
        return Err("empty key.id".into());
    }
    let remote = k.remote_jid.trim().to_string();
    if remote.is_empty() {
        return Err("empty key.remoteJid".into());
    }
    let mode = k.addressing_mode.as_deref();
    let group = remote.ends_with("@g.us").then(|| remote.clone());
    let (sender_id, alt_id, user) = match &group {
        Some(g) => {
            let participant = non_empty(k.participant.as_deref()).unwrap_or_else(|| g.clone());
            let (id, alt) =
                prefer_phone(participant, non_empty(k.participant_alt.as_deref()), mode);
            (id, alt, g.clone())
        }
        None => {
            let (id, alt) =
                prefer_phone(remote.clone(), non_empty(k.remote_jid_alt.as_deref()), mode);
            (id.clone(), alt, id)
        }
    };
    let sender = Sender {
        phone: phone_of(&sender_id),
        id: sender_id,
        name: non_empty(up.push_name.as_deref()),
        alt_id,
    };
    let opt_in = if remote == "status@broadcast" {
        Some(OptIn::StatusBroadcast)
    } else if k.from_me == Some(true) && from_a_person(up.source.as_deref()) {
        Some(OptIn::Operator)
    } else if k.from_me == Some(true) {
        Some(OptIn::FromMe)
    } else {
        None
    };

    let mut msg = Message::of_kind(k.id, MessageKind::Other, sender);
    msg.sent_at = up.message_timestamp.and_then(unix_secs_raw);
    // The content's top-level keys, each value still raw (a non-object content has none).
    let fields: BTreeMap<String, &RawValue> = up
        .message
        .filter(|m| first_byte(m) == b'{')
        .map(|m| serde_json::from_str(m.get()))
        .transpose()
        .map_err(|e| ParseError::json("message", &e).0)?
        .unwrap_or_default();
    let kind = up
        .message_type
        .filter(|t| fields.contains_key(t))
        .or_else(|| {
            fields
                .keys()
                .find(|k| !matches!(k.as_str(), "messageContextInfo" | "base64" | "mediaUrl"))
                .cloned()
        })
        .unwrap_or_else(|| "empty".to_string());
    // Only what `fill` reads becomes a `Value`: the kind's object and `mediaUrl`.
    let mut content = serde_json::Map::new();
    for name in [kind.as_str(), "mediaUrl"] {
        if let Some(raw) = fields.get(name) {
            let v: Value = serde_json::from_str(raw.get())
                .map_err(|e| ParseError::json(&format!("message.{name}"), &e).0)?;
            content.insert(name.to_string(), v);
        }
    }
    let content = Value::Object(content);
    fill(&mut msg, &kind, &content);
    msg.reply_to = str_at(&content, &[&kind, "contextInfo", "stanzaId"]).or_else(|| {
        up.context_info
            .and_then(|c| serde_json::from_str::<ContextInfo>(c.get()).ok())
            .and_then(|c| non_empty(c.stanza_id.as_deref()))
    });
    Ok(Item {
        account: instance.to_string(),
        user,
        group,
        message: msg,
        opt_in,
    })
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    non_empty(cur.as_str())
}

fn f64_at(v: &Value, key: &str) -> Option<f64> {
    let x = v.get(key)?;
    x.as_f64()
        .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|f: &f64| f.is_finite())
}

/// Contacts from a vCard: the formatted name and every `TEL` value.
pub(crate) fn vcard_contact(display_name: Option<String>, vcard: Option<&str>) -> Contact {
    let mut c = Contact {
        name: display_name,
        phones: Vec::new(),
    };
    for line in vcard.unwrap_or("").lines() {
        let line = line.trim();
        let upper = line.get(..3).map(str::to_ascii_uppercase);
        if upper.as_deref() == Some("TEL") || line.contains(".TEL") {
            if let Some((_, v)) = line.rsplit_once(':') {
                if !v.trim().is_empty() {
                    c.phones.push(v.trim().to_string());
                }
            }
        } else if c.name.is_none() && line.starts_with("FN:") {
            c.name = non_empty(line.get(3..));
        }
    }
    c
}

fn fill(msg: &mut Message, kind: &str, m: &Value) {
    let body = m.get(kind).unwrap_or(&Value::Null);
    match kind {
        "conversation" => {
            msg.kind = MessageKind::Text;
            msg.text = m
                .get("conversation")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        "extendedTextMessage" => {
            msg.kind = MessageKind::Text;
            msg.text = body.get("text").and_then(Value::as_str).map(str::to_string);
        }
        "imageMessage"
        | "videoMessage"
        | "ptvMessage"
        | "audioMessage"
        | "stickerMessage"
        | "documentMessage"
        | "documentWithCaptionMessage" => {
            // documentWithCaptionMessage wraps {message: {documentMessage: {...}}}.
            let body = if kind == "documentWithCaptionMessage" {
                body.get("message")
                    .and_then(|x| x.get("documentMessage"))
                    .unwrap_or(&Value::Null)
            } else {
                body
            };
            msg.kind = match kind {
                "imageMessage" => MessageKind::Image,
                "videoMessage" | "ptvMessage" => MessageKind::Video,
                "audioMessage" => MessageKind::Audio,
                "stickerMessage" => MessageKind::Sticker,
                _ => MessageKind::Document,
            };
            msg.caption = str_at(body, &["caption"]);
            msg.media = Some(Media {
                id: None,
                // With S3 enabled Evolution adds a fetchable `mediaUrl`; WhatsApp's own URL
                // is encrypted and only useful with the media key.
                url: str_at(m, &["mediaUrl"]).or_else(|| str_at(body, &["url"])),
                mime_type: str_at(body, &["mimetype"]),
                filename: str_at(body, &["fileName"]),
                voice: kind == "audioMessage"
                    && body.get("ptt").and_then(Value::as_bool) == Some(true),
            });
        }
        "locationMessage" | "liveLocationMessage" => {
            match (
                f64_at(body, "degreesLatitude"),
                f64_at(body, "degreesLongitude"),
            ) {
                (Some(latitude), Some(longitude)) => {
                    msg.kind = MessageKind::Location;
                    msg.location = Some(Location {
                        latitude,
                        longitude,
                        name: str_at(body, &["name"]),
                        address: str_at(body, &["address"]),
                    });
                    msg.caption = str_at(body, &["caption"]);
                }
                _ => msg.provider_type = Some(kind.to_string()),
            }
        }
        "contactMessage" => {
            msg.kind = MessageKind::Contacts;
            msg.contacts = vec![vcard_contact(
                str_at(body, &["displayName"]),
                body.get("vcard").and_then(Value::as_str),
            )];
        }
        "contactsArrayMessage" => {
            msg.kind = MessageKind::Contacts;
            msg.contacts = body
                .get("contacts")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            vcard_contact(
                                str_at(c, &["displayName"]),
                                c.get("vcard").and_then(Value::as_str),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        "reactionMessage" => match str_at(body, &["key", "id"]) {
            Some(message_id) => {
                msg.kind = MessageKind::Reaction;
                msg.reaction = Some(Reaction {
                    message_id,
                    emoji: str_at(body, &["text"]),
                });
            }
            None => msg.provider_type = Some(kind.to_string()),
        },
        "buttonsResponseMessage" | "templateButtonReplyMessage" => {
            let id = str_at(body, &["selectedButtonId"]).or_else(|| str_at(body, &["selectedId"]));
            let title = str_at(body, &["selectedDisplayText"]);
            msg.kind = MessageKind::Button;
            msg.reply = Some(Reply {
                id: id.clone().or_else(|| title.clone()).unwrap_or_default(),
                title: title.or(id).unwrap_or_default(),
            });
        }
        "listResponseMessage" => {
            let id = str_at(body, &["singleSelectReply", "selectedRowId"]);
            let title = str_at(body, &["title"]);
            msg.kind = MessageKind::Interactive;
            msg.reply = Some(Reply {
                id: id.clone().or_else(|| title.clone()).unwrap_or_default(),
                title: title.or(id).unwrap_or_default(),
            });
        }
        "interactiveResponseMessage" => {
            msg.kind = MessageKind::Interactive;
            msg.provider_type = Some(kind.to_string());
            msg.text = str_at(body, &["nativeFlowResponseMessage", "paramsJson"])
                .or_else(|| str_at(body, &["body", "text"]));
        }
        // protocolMessage, pollCreationMessage, empty, ...: kept as `other`, never dropped.
        other => {
            msg.provider_type = Some(other.to_string());
            msg.text = str_at(body, &["text"]).or_else(|| str_at(body, &["caption"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_normalise() {
        assert_eq!(normalise_event("MESSAGES_UPSERT"), "messages.upsert");
        assert_eq!(normalise_event("messages-upsert"), "messages.upsert");
    }

    #[test]
    fn vcard_phones_are_read() {
        let c = vcard_contact(
            None,
            Some("BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nitem1.TEL;waid=5511:+55 11 9999\nEND:VCARD"),
        );
        assert_eq!(c.name.as_deref(), Some("Ana"));
        assert_eq!(c.phones, ["+55 11 9999"]);
    }
}
