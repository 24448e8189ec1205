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

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender, Target};
use lull_core::{Message, MessageKind};

use super::{
    non_empty, raw_array, raw_as, raw_str, unix_secs_raw, Item, OptIn, ParseError, Parsed,
    MAX_CONTACTS, MAX_ITEMS,
};

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
    /// The instance's own JID (`sender` of Evolution's envelope).
    #[serde(default, borrow)]
    sender: Option<&'a RawValue>,
}

/// Baileys' `{messages: [...]}` shape of `data`; every other field is skipped unread.
#[derive(Deserialize)]
struct MessagesProbe<'a> {
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
}

/// One `messages.upsert` record; every field raw, so an odd one cannot make the record
/// unreadable (the key is read on its own).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert<'a> {
    #[serde(default, borrow)]
    key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    push_name: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message_timestamp: Option<&'a RawValue>,
    #[serde(default, borrow)]
    context_info: Option<&'a RawValue>,
    /// The device the message was sent from, as Evolution reads it off the message id (Baileys'
    /// `getDevice`): `android`, `ios`, `desktop`, `web` or `unknown`. Messages sent through
    /// Evolution's API have Baileys' own ids, which read as `web`.
    #[serde(default, borrow)]
    source: Option<&'a RawValue>,
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

/// `messages.update` data (Evolution 2.3.7 and later also send edits this way): the original
/// message's key spelled out, and `message.editedMessage.message` for an edit.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Update<'a> {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    remote_jid: Option<String>,
    #[serde(default)]
    from_me: Option<bool>,
    #[serde(default)]
    participant: Option<String>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
}

/// Baileys' `protocolMessage` (`messages.edited` data, or inside a `messages.upsert` record):
/// `type` `REVOKE` (0) or `MESSAGE_EDIT` (14), the original's key, the new content.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Protocol<'a> {
    #[serde(default, borrow)]
    key: Option<&'a RawValue>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    edited_message: Option<&'a RawValue>,
}

/// What a protocol message does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProtocolKind {
    Revoke,
    Edit,
    Other,
}

impl Protocol<'_> {
    fn what(&self) -> ProtocolKind {
        match self.kind.map(|k| k.get().trim().trim_matches('"')) {
            Some("0" | "REVOKE") => ProtocolKind::Revoke,
            Some("14" | "MESSAGE_EDIT") => ProtocolKind::Edit,
            _ => ProtocolKind::Other,
        }
    }
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
    let not_object = || ParseError::new(format!("evolution {event}: data is not an object"));
    let one = |out: &mut Parsed, r: Result<Item, &'static str>| match r {
        Ok(item) => out.items.push(item),
        Err(reason) => out.ignored.push(reason),
    };
    match event.as_str() {
        "presence.update" => {
            // Not a message: the route reads it with `parse::presence` when the tenant wants it.
            out.ignored.push("presence");
        }
        "messages.upsert" => {
            // v2 sends one message object; accept an array (or Baileys' {messages: [...]}) too.
            let data = body.data.ok_or_else(not_object)?;
            let array = match first_byte(data) {
                b'[' => Some(data),
                b'{' => {
                    let probe: MessagesProbe<'_> = serde_json::from_str(data.get())
                        .map_err(|e| ParseError::json("evolution data", &e))?;
                    probe.messages.filter(|m| first_byte(m) == b'[')
                }
                _ => return Err(not_object()),
            };
            let records = match array {
                Some(a) => {
                    let a = raw_array(a, MAX_ITEMS)
                        .map_err(|e| ParseError::json("evolution data", &e))?;
                    out.beyond_cap += a.beyond;
                    a.items
                }
                None => vec![data],
            };
            for record in records {
                let r = upsert(&instance, record, &mut out.partial);
                one(&mut out, r);
            }
        }
        "messages.update" => {
            let data = body
                .data
                .filter(|d| first_byte(d) == b'{')
                .ok_or_else(not_object)?;
            match update(&instance, data, &mut out.partial) {
                Some(r) => one(&mut out, r),
                // A receipt (delivered, read...): no message.
                None => out.ignored.push("status"),
            }
        }
        "messages.delete" => {
            let data = body
                .data
                .filter(|d| first_byte(d) == b'{')
                .ok_or_else(not_object)?;
            let r = raw_as::<Key>(Some(data))
                .ok_or("no_key")
                .and_then(|k| revoke_of(&instance, k));
            one(&mut out, r);
        }
        "messages.edited" => {
            let data = body
                .data
                .filter(|d| first_byte(d) == b'{')
                .ok_or_else(not_object)?;
            let own = raw_str(body.sender);
            match edited(&instance, data, own.as_deref(), &mut out.partial) {
                Some(r) => one(&mut out, r),
                None => out.ignored.push("event"),
            }
        }
        _ => out.ignored.push("event"),
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

/// Where a message belongs: its conversation, its sender and whether it is an opt-in.
struct Placed {
    user: String,
    group: Option<String>,
    sender: Sender,
    opt_in: Option<OptIn>,
}

impl Placed {
    /// The item of a message `id` placed here, its content filled by `fill`.
    fn item(self, instance: &str, id: String, fill: impl FnOnce(&mut Message)) -> Item {
        let mut message = Message::of_kind(id, MessageKind::Other, self.sender);
        fill(&mut message);
        Item {
            account: instance.to_string(),
            user: self.user,
            group: self.group,
            message,
            opt_in: self.opt_in,
        }
    }
}

/// Where a message with this key belongs, or the reason it is skipped. `source` tells a
/// person's `fromMe` message from the bot's.
fn place(k: &Key, push_name: Option<String>, source: Option<&str>) -> Result<Placed, &'static str> {
    let remote = k.remote_jid.trim().to_string();
    if remote.is_empty() {
        return Err("no_chat");
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
        name: push_name,
        alt_id,
    };
    let opt_in = if remote == "status@broadcast" {
        Some(OptIn::StatusBroadcast)
    } else if k.from_me == Some(true) && from_a_person(source) {
        Some(OptIn::Operator)
    } else if k.from_me == Some(true) {
        Some(OptIn::FromMe)
    } else {
        None
    };
    Ok(Placed {
        user,
        group,
        sender,
        opt_in,
    })
}

/// A `messages.upsert` record; `Err` is the reason it is skipped.
fn upsert(
    instance: &str,
    raw: &RawValue,
    partial: &mut Vec<&'static str>,
) -> Result<Item, &'static str> {
    let up: Upsert<'_> = serde_json::from_str(raw.get()).map_err(|_| "unreadable")?;
    let k: Key = raw_as(up.key).ok_or("no_key")?;
    if k.id.trim().is_empty() {
        return Err("no_id");
    }
    let source = raw_str(up.source);
    let placed = place(
        &k,
        non_empty(raw_str(up.push_name).as_deref()),
        source.as_deref(),
    )?;
    // An edit or unsend that came as a message (Evolution before 2.3, or Baileys' own shape):
    // the outer key names the chat from lull's side, the protocol message the original.
    let protocol = up
        .message
        .and_then(|m| raw_as::<Wrapped<'_>>(Some(m)))
        .and_then(|w| w.protocol());
    if let Some(p) = protocol {
        let original = raw_as::<Key>(p.key).and_then(|k| non_empty(Some(&k.id)));
        if let (Some(original), true) = (original, p.what() != ProtocolKind::Other) {
            return Ok(placed.item(instance, String::new(), |msg| {
                msg.sent_at = up.message_timestamp.and_then(unix_secs_raw);
                protocol_message(msg, &p, original, partial);
            }));
        }
    }
    Ok(placed.item(instance, k.id, |msg| {
        msg.sent_at = up.message_timestamp.and_then(unix_secs_raw);
        if let Some(reason) = content(msg, up.message, raw_str(up.message_type)) {
            partial.push(reason);
        }
        if msg.reply_to.is_none() {
            msg.reply_to = up
                .context_info
                .and_then(|c| serde_json::from_str::<ContextInfo>(c.get()).ok())
                .and_then(|c| non_empty(c.stanza_id.as_deref()));
        }
    }))
}

/// A message content that wraps a protocol message: `protocolMessage` itself, or
/// `editedMessage.message.protocolMessage` (Baileys' `FutureProofMessage` of an edit).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapped<'a> {
    #[serde(default, borrow)]
    protocol_message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    edited_message: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FutureProof<'a> {
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
}

impl<'a> Wrapped<'a> {
    fn protocol(&self) -> Option<Protocol<'a>> {
        let inner = || {
            raw_as::<FutureProof<'a>>(self.edited_message)
                .and_then(|f| raw_as::<Wrapped<'a>>(f.message))
                .and_then(|w| w.protocol_message)
        };
        raw_as(self.protocol_message.or_else(inner))
    }
}

/// Makes `msg` the edit or revoke a protocol message describes. Its id is derived from the
/// event (`<original>#revoke`, `<original>#edit:<hash of the new content>`), the same for
/// every event Evolution sends for one action (`messages.edited`, `messages.update`,
/// `messages.delete`, an upsert), so they are one message to the dedupe.
fn protocol_message(
    msg: &mut Message,
    p: &Protocol<'_>,
    original: String,
    partial: &mut Vec<&'static str>,
) {
    if p.what() == ProtocolKind::Revoke {
        revoke(msg, original);
    } else {
        edit(msg, original, p.edited_message, "messages.edited", partial);
    }
}

fn revoke(msg: &mut Message, original: String) {
    msg.id = format!("{original}#revoke");
    msg.kind = MessageKind::Revoke;
    msg.provider_type = Some("revoke".into());
    msg.target = Some(Target {
        message_id: original,
        batch_id: None,
    });
}

fn edit(
    msg: &mut Message,
    original: String,
    new_content: Option<&RawValue>,
    provider_type: &str,
    partial: &mut Vec<&'static str>,
) {
    if let Some(reason) = content(msg, new_content, None) {
        partial.push(reason);
    }
    msg.kind = MessageKind::Edit;
    msg.provider_type = None;
    msg.id = format!("{original}#edit:{}", super::content_hash(&content_of(msg)));
    msg.provider_type = Some(provider_type.into());
    msg.target = Some(Target {
        message_id: original,
        batch_id: None,
    });
}

/// The new content of an edit as JSON, whatever shape it came in: what its id is derived from.
fn content_of(msg: &Message) -> String {
    let mut m = Message::of_kind(String::new(), msg.kind, Sender::default());
    m.text = msg.text.clone();
    m.caption = msg.caption.clone();
    m.media = msg.media.clone();
    m.location = msg.location.clone();
    m.contacts = msg.contacts.clone();
    m.reply = msg.reply.clone();
    serde_json::to_string(&m).unwrap_or_default()
}

/// `messages.update`: an edit (`message.editedMessage.message`) or a receipt (`None`).
fn update(
    instance: &str,
    raw: &RawValue,
    partial: &mut Vec<&'static str>,
) -> Option<Result<Item, &'static str>> {
    let u: Update<'_> = raw_as(Some(raw))?;
    let new_content = raw_as::<Wrapped<'_>>(u.message)
        .and_then(|w| raw_as::<FutureProof<'_>>(w.edited_message))
        .and_then(|f| f.message)?;
    Some((|| {
        let original = non_empty(u.key_id.as_deref()).ok_or("no_target")?;
        let k = Key {
            remote_jid: u.remote_jid.unwrap_or_default(),
            remote_jid_alt: None,
            from_me: u.from_me,
            id: original.clone(),
            participant: u.participant,
            participant_alt: None,
            addressing_mode: None,
        };
        Ok(place(&k, None, None)?.item(instance, String::new(), |msg| {
            edit(msg, original, Some(new_content), "messages.update", partial)
        }))
    })())
}

/// `messages.delete`: the original message's key, from lull's side.
fn revoke_of(instance: &str, k: Key) -> Result<Item, &'static str> {
    let original = non_empty(Some(&k.id)).ok_or("no_target")?;
    Ok(place(&k, None, None)?.item(instance, String::new(), |msg| {
        revoke(msg, original);
        msg.provider_type = Some("messages.delete".into());
    }))
}

/// `messages.edited`: Baileys' protocol message as the sender wrote it, so its key is from the
/// sender's side: a contact's edit names the instance's own JID (`own`, the envelope's
/// `sender`) as `remoteJid`, and the chat is not in the event at all (skipped, counted
/// `edit_no_chat`: Evolution 2.3.7 and later also send it as `messages.update`, which names
/// the chat). A group names the group; any other JID is a chat the business itself edited or
/// deleted in (its own message: [`OptIn::FromMe`]). `None` for other protocol messages.
fn edited(
    instance: &str,
    raw: &RawValue,
    own: Option<&str>,
    partial: &mut Vec<&'static str>,
) -> Option<Result<Item, &'static str>> {
    let p: Protocol<'_> = raw_as(Some(raw))?;
    if p.what() == ProtocolKind::Other {
        return None;
    }
    Some((|| {
        let k: Key = raw_as(p.key).ok_or("no_target")?;
        let original = non_empty(Some(&k.id)).ok_or("no_target")?;
        let bare = |j: &str| j.split(['@', ':']).next().unwrap_or("").to_string();
        let remote = k.remote_jid.trim();
        let group = remote.ends_with("@g.us");
        if !group && own.is_none_or(|o| bare(o) == bare(remote)) {
            return Err("edit_no_chat");
        }
        // A group's edit is a member's (the sender's own `fromMe` says nothing from lull's side).
        let placed = Key {
            from_me: Some(!group),
            ..k
        };
        Ok(
            place(&placed, None, None)?.item(instance, String::new(), |msg| {
                protocol_message(msg, &p, original, partial)
            }),
        )
    })())
}

/// Fills `msg`'s content from a Baileys message object (`message` of a record, or an edit's new
/// content); `Some(reason)` when it could not be fully read (then `msg` is kind `other`).
fn content(
    msg: &mut Message,
    message: Option<&RawValue>,
    message_type: Option<String>,
) -> Option<&'static str> {
    // The content's top-level keys, each value still raw (a non-object content has none).
    let fields: BTreeMap<String, &RawValue> = match message.filter(|m| first_byte(m) == b'{') {
        Some(m) => match serde_json::from_str(m.get()) {
            Ok(f) => f,
            Err(_) => {
                msg.provider_type = Some("unreadable".into());
                return Some("unreadable_content");
            }
        },
        None => BTreeMap::new(),
    };
    let kind = message_type
        .filter(|t| fields.contains_key(t))
        .or_else(|| {
            fields
                .keys()
                .find(|k| !matches!(k.as_str(), "messageContextInfo" | "base64" | "mediaUrl"))
                .cloned()
        })
        .unwrap_or_else(|| "empty".to_string());
    if kind == "contactsArrayMessage" {
        return contacts_array(msg, fields.get(kind.as_str()).copied());
    }
    // Only what `fill` reads becomes a `Value`: the kind's object and `mediaUrl`.
    let mut content = serde_json::Map::new();
    for name in [kind.as_str(), "mediaUrl"] {
        if let Some(raw) = fields.get(name) {
            match serde_json::from_str::<Value>(raw.get()) {
                Ok(v) => {
                    content.insert(name.to_string(), v);
                }
                Err(_) => {
                    msg.provider_type = Some(kind.clone());
                    return Some("unreadable_content");
                }
            }
        }
    }
    let content = Value::Object(content);
    fill(msg, &kind, &content);
    msg.reply_to = str_at(&content, &[&kind, "contextInfo", "stanzaId"]);
    None
}

/// `contactsArrayMessage`: at most [`MAX_CONTACTS`] cards are read, the rest skipped (counted).
fn contacts_array(msg: &mut Message, raw: Option<&RawValue>) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Cards<'a> {
        #[serde(default, borrow)]
        contacts: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Card {
        #[serde(default)]
        display_name: Option<String>,
        #[serde(default)]
        vcard: Option<String>,
    }
    msg.kind = MessageKind::Contacts;
    let cards = raw_as::<Cards<'_>>(raw)
        .and_then(|c| c.contacts)
        .and_then(|c| raw_array(c, MAX_CONTACTS).ok());
    let cards = cards?;
    msg.contacts = cards
        .items
        .into_iter()
        .filter_map(|c| raw_as::<Card>(Some(c)))
        .map(|c| vcard_contact(non_empty(c.display_name.as_deref()), c.vcard.as_deref()))
        .collect();
    (cards.beyond > 0).then_some("too_many_contacts")
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
