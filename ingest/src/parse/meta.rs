//! Meta WhatsApp Cloud API webhooks (also 360dialog, which forwards the same body).
//!
//! One POST carries `entry[] x changes[] x (messages[] | message_echoes[] | statuses[])`. The
//! business number is `metadata.phone_number_id` (not the WABA id in `entry.id`): two numbers of
//! one WABA talking to one user are two conversations. Statuses and other fields are
//! acknowledged and counted, never buffered.
//!
//! ## What is kept
//! The envelope (`entry`, `changes`, a messages change's `metadata.phone_number_id`) must be
//! Meta's: otherwise the request is refused. Each message is then read on its own: one Meta
//! could not fill (`interactive` without its `interactive` object, sent with an `errors` array)
//! or lull cannot read is kept as kind `other` with its `type` as `provider_type` and what could
//! be read (sender, time, reply context), counted in [`Parsed::partial`]. A message without an
//! id or a sender is skipped and counted ([`Parsed::ignored`]).
//!
//! ## Edits, unsends and the Business app
//! `type: "edit"` (`edit.original_message_id`, `edit.message` with the new content) becomes kind
//! `edit`, `type: "revoke"` (`revoke.original_message_id`) kind `revoke`, both with `target`
//! and the event's own `id`. `smb_message_echoes` changes (WhatsApp Business app coexistence:
//! `message_echoes[]`, `from` = the business, `to` = the user) are what a person sent from the
//! app: items keyed on the user with [`OptIn::Operator`], so they pause the conversation.
//!
//! ## User identity
//! Since April 2026 every user also has a business-scoped user id (BSUID: `from_user_id` on the
//! message, `user_id` in `contacts[]`), and for users with a username it is the only id: the
//! phone number (`from`, `wa_id`) may be withheld. The BSUID is present for every user while the
//! phone comes and goes, so lull keys the conversation on the **BSUID when the payload carries
//! one, else the phone number**. `Sender.id` is that key, `Sender.phone` the `wa_id`/`from` when
//! sent, `Sender.alt_id` the BSUID when sent. An echo names the user in `to` / `to_user_id`.

use serde::Deserialize;
use serde_json::value::RawValue;

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender, Target};
use lull_core::{Message, MessageKind, Millis};

use super::{
    non_empty, raw_array, raw_as, raw_str, unix_secs_raw, Item, OptIn, ParseError, Parsed,
    MAX_CONTACTS, MAX_ITEMS,
};

// No `serde_json::Value` tree: arrays are read as raw slices of the body (borrowed, not copied,
// at most `MAX_ITEMS` each), and each message is read twice from its slice: once for who and
// when ([`Head`], every field raw so an odd type cannot fail it), once for its content.

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    object: Option<String>,
    #[serde(borrow)]
    entry: &'a RawValue,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    changes: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default)]
    field: Option<String>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, borrow)]
    contacts: Option<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message_echoes: Option<&'a RawValue>,
    #[serde(default, borrow)]
    statuses: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct ContactEntry {
    #[serde(default)]
    profile: Option<Profile>,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(default)]
    name: Option<String>,
}

/// Who, when and what type: every field raw, so reading it fails only for a non-object.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    from: Option<&'a RawValue>,
    #[serde(default, borrow)]
    from_user_id: Option<&'a RawValue>,
    /// Echoes: the user the business wrote to.
    #[serde(default, borrow)]
    to: Option<&'a RawValue>,
    #[serde(default, borrow)]
    to_user_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    group_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    edit: Option<&'a RawValue>,
    #[serde(default, borrow)]
    revoke: Option<&'a RawValue>,
}

/// A message's content, by type (also the `message` of an edit).
#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    text: Option<TextBody>,
    #[serde(default)]
    image: Option<MediaBody>,
    #[serde(default)]
    audio: Option<MediaBody>,
    #[serde(default)]
    video: Option<MediaBody>,
    #[serde(default)]
    document: Option<MediaBody>,
    #[serde(default)]
    sticker: Option<MediaBody>,
    #[serde(default)]
    location: Option<LocationBody>,
    #[serde(default, borrow)]
    contacts: Option<&'a RawValue>,
    #[serde(default)]
    interactive: Option<Interactive>,
    #[serde(default)]
    button: Option<ButtonBody>,
    #[serde(default)]
    reaction: Option<ReactionBody>,
    #[serde(default)]
    system: Option<SystemBody>,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Deserialize)]
struct MediaBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    voice: Option<bool>,
}

#[derive(Deserialize)]
struct LocationBody {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct ContactCard {
    #[serde(default)]
    name: Option<ContactName>,
    #[serde(default)]
    phones: Vec<ContactPhone>,
}

#[derive(Deserialize)]
struct ContactName {
    #[serde(default)]
    formatted_name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
}

#[derive(Deserialize)]
struct ContactPhone {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    wa_id: Option<String>,
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    button_reply: Option<ReplyBody>,
    #[serde(default)]
    list_reply: Option<ReplyBody>,
    #[serde(default)]
    nfm_reply: Option<NfmReply>,
    #[serde(default)]
    call_permission_reply: Option<CallPermissionReply>,
}

#[derive(Deserialize)]
struct ReplyBody {
    id: String,
    title: String,
}

/// A WhatsApp Flow's answer (`name: "flow"`, or `address_message`): its JSON is the content.
#[derive(Deserialize)]
struct NfmReply {
    #[serde(default)]
    response_json: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The user's answer to a call permission request (Calling API).
#[derive(Deserialize)]
struct CallPermissionReply {
    /// `accept` or `reject`.
    response: String,
    #[serde(default)]
    is_permanent: Option<bool>,
    /// Unix seconds, when the user accepted for a limited time.
    #[serde(default)]
    expiration_timestamp: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ButtonBody {
    #[serde(default)]
    payload: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct ReactionBody {
    message_id: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct SystemBody {
    #[serde(default)]
    body: Option<String>,
}

/// `{original_message_id, message}` of an edit, `{original_message_id}` of a revoke.
#[derive(Deserialize)]
struct EditRef<'a> {
    #[serde(default, borrow)]
    original_message_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
}

/// Parses a Meta webhook body.
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let body: Body<'_> = serde_json::from_slice(body).map_err(|e| ParseError::json("meta", &e))?;
    let mut out = Parsed::default();
    if body
        .object
        .as_deref()
        .is_some_and(|o| o != "whatsapp_business_account")
    {
        out.ignored.push("object");
        return Ok(out);
    }
    let entries =
        raw_array(body.entry, MAX_ITEMS).map_err(|e| ParseError::json("meta entry", &e))?;
    out.beyond_cap += entries.beyond;
    for (ei, raw_entry) in entries.items.into_iter().enumerate() {
        let entry: Entry<'_> = serde_json::from_str(raw_entry.get())
            .map_err(|e| ParseError::json(&format!("meta entry[{ei}]"), &e))?;
        let Some(changes) = entry.changes else {
            continue;
        };
        let changes = raw_array(changes, MAX_ITEMS)
            .map_err(|e| ParseError::json(&format!("meta entry[{ei}].changes"), &e))?;
        out.beyond_cap += changes.beyond;
        for (ci, raw_change) in changes.items.into_iter().enumerate() {
            let context = format!("meta entry[{ei}].changes[{ci}]");
            let change: Change<'_> = serde_json::from_str(raw_change.get())
                .map_err(|e| ParseError::json(&context, &e))?;
            change_items(&mut out, change, &context)?;
        }
    }
    Ok(out)
}

/// The items of one change (`messages` or `smb_message_echoes`), appended to `out`.
fn change_items(out: &mut Parsed, change: Change<'_>, context: &str) -> Result<(), ParseError> {
    let echoes = match change.field.as_deref() {
        None | Some("messages") => false,
        Some("smb_message_echoes") => true,
        // account_update, message_template_status_update, history, ...: not chat messages.
        Some(_) => {
            out.ignored.push("field");
            return Ok(());
        }
    };
    let raw = change
        .value
        .ok_or_else(|| ParseError::new(format!("{context}.value: missing")))?;
    let value: ChangeValue<'_> = serde_json::from_str(raw.get())
        .map_err(|e| ParseError::json(&format!("{context}.value"), &e))?;
    let account = value
        .metadata
        .map(|m| m.phone_number_id)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| ParseError::new(format!("{context}: missing metadata.phone_number_id")))?;
    out.add_account(&account);
    if let Some(statuses) = value.statuses {
        // Counted, never read: a status is no message.
        let statuses = raw_array(statuses, 0)
            .map_err(|e| ParseError::json(&format!("{context}.value.statuses"), &e))?;
        out.ignored.add("status", statuses.beyond);
    }
    let contacts: Vec<ContactEntry> = match value.contacts {
        Some(c) => raw_array(c, MAX_ITEMS)
            .map(|a| {
                a.items
                    .into_iter()
                    .filter_map(|c| raw_as(Some(c)))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let list = if echoes {
        value.message_echoes
    } else {
        value.messages
    };
    let Some(list) = list else {
        return Ok(());
    };
    let list = raw_array(list, MAX_ITEMS)
        .map_err(|e| ParseError::json(&format!("{context}.value.messages"), &e))?;
    out.beyond_cap += list.beyond;
    for raw in list.items {
        if out.items.len() >= MAX_ITEMS {
            out.beyond_cap += 1;
            continue;
        }
        match message(&account, &contacts, raw, echoes, &mut out.partial) {
            Ok(item) => out.items.push(item),
            Err(skip) => out.ignored.push(skip),
        }
    }
    Ok(())
}

/// One message (or echo); `Err` is the `reason` it is skipped for.
fn message(
    account: &str,
    contacts: &[ContactEntry],
    raw: &RawValue,
    echo: bool,
    partial: &mut Vec<&'static str>,
) -> Result<Item, &'static str> {
    let head: Head<'_> = serde_json::from_str(raw.get()).map_err(|_| "unreadable")?;
    let id = raw_str(head.id)
        .and_then(|s| non_empty(Some(&s)))
        .ok_or("no_id")?;
    let (user_phone, user_bsuid) = if echo {
        (raw_str(head.to), raw_str(head.to_user_id))
    } else {
        (raw_str(head.from), raw_str(head.from_user_id))
    };
    let (user_phone, user_bsuid) = (
        non_empty(user_phone.as_deref()),
        non_empty(user_bsuid.as_deref()),
    );
    // The contact entry of the user: same phone, same BSUID, or the only one.
    let contact = contacts
        .iter()
        .find(|c| {
            (user_phone.is_some() && c.wa_id == user_phone)
                || (user_bsuid.is_some() && c.user_id == user_bsuid)
        })
        .or(if contacts.len() == 1 && !echo {
            contacts.first()
        } else {
            None
        });
    let phone = user_phone.or_else(|| contact.and_then(|c| non_empty(c.wa_id.as_deref())));
    let bsuid = user_bsuid.or_else(|| contact.and_then(|c| non_empty(c.user_id.as_deref())));
    let user_id = bsuid.clone().or_else(|| phone.clone()).ok_or("no_sender")?;
    let sender = if echo {
        // The business wrote it: `from` is its display number.
        let business = non_empty(raw_str(head.from).as_deref()).unwrap_or_else(|| account.into());
        Sender {
            id: business,
            ..Sender::default()
        }
    } else {
        Sender {
            id: user_id.clone(),
            name: contact
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| non_empty(p.name.as_deref())),
            phone,
            alt_id: bsuid,
        }
    };

    let mut msg = Message::of_kind(id, MessageKind::Other, sender);
    msg.sent_at = head.timestamp.and_then(unix_secs_raw);
    let kind = raw_str(head.kind).unwrap_or_default();
    match kind.as_str() {
        "edit" | "revoke" => {
            let change: Option<EditRef<'_>> = raw_as(if kind == "edit" {
                head.edit
            } else {
                head.revoke
            });
            let original = change
                .as_ref()
                .and_then(|c| raw_str(c.original_message_id))
                .and_then(|s| non_empty(Some(&s)));
            msg.provider_type = Some(kind.clone());
            match original {
                Some(message_id) => {
                    msg.target = Some(Target {
                        message_id,
                        batch_id: None,
                    });
                    if kind == "edit" {
                        // The new content is a message of its own type inside `edit.message`.
                        let inner = change.as_ref().and_then(|c| c.message);
                        let inner_kind = inner
                            .and_then(|m| raw_as::<Head<'_>>(Some(m)))
                            .and_then(|h| raw_str(h.kind))
                            .unwrap_or_default();
                        if let Some(reason) = fill(&mut msg, &inner_kind, inner) {
                            partial.push(reason);
                        }
                        msg.kind = MessageKind::Edit;
                        msg.provider_type = Some(kind);
                    } else {
                        msg.kind = MessageKind::Revoke;
                    }
                }
                None => partial.push("no_target"),
            }
        }
        _ => {
            if let Some(reason) = fill(&mut msg, &kind, Some(raw)) {
                partial.push(reason);
            }
        }
    }
    let group = non_empty(raw_str(head.group_id).as_deref());
    let (user, group) = match group {
        Some(g) => (g.clone(), Some(g)),
        None => (user_id, None),
    };
    Ok(Item {
        account: account.to_string(),
        user,
        group,
        message: msg,
        opt_in: echo.then_some(OptIn::Operator),
    })
}

/// Fills `msg`'s content from a message object of type `kind`; `Some(reason)` when it could not
/// be fully read (then `msg` is kind `other` with `provider_type` = `kind`).
fn fill(msg: &mut Message, kind: &str, raw: Option<&RawValue>) -> Option<&'static str> {
    let fallback = |msg: &mut Message| {
        msg.kind = MessageKind::Other;
        msg.provider_type = Some(if kind.is_empty() { "unknown" } else { kind }.to_string());
    };
    let c: Content<'_> = match raw.map(|r| serde_json::from_str(r.get())) {
        Some(Ok(c)) => c,
        _ => {
            fallback(msg);
            return Some("unreadable_content");
        }
    };
    msg.reply_to = c.context.and_then(|c| non_empty(c.id.as_deref()));
    let mut note = None;
    let missing = |msg: &mut Message| {
        fallback(msg);
        Some("missing_object")
    };
    match kind {
        "text" => match c.text {
            Some(t) => {
                msg.kind = MessageKind::Text;
                msg.text = Some(t.body);
            }
            None => return missing(msg),
        },
        "image" | "audio" | "video" | "document" | "sticker" => {
            let (k, body) = match kind {
                "image" => (MessageKind::Image, c.image),
                "audio" => (MessageKind::Audio, c.audio),
                "video" => (MessageKind::Video, c.video),
                "document" => (MessageKind::Document, c.document),
                _ => (MessageKind::Sticker, c.sticker),
            };
            let Some(b) = body else {
                return missing(msg);
            };
            msg.kind = k;
            msg.caption = non_empty(b.caption.as_deref());
            msg.media = Some(Media {
                id: b.id,
                url: b.url,
                mime_type: b.mime_type,
                filename: b.filename,
                voice: b.voice.unwrap_or(false),
            });
        }
        "location" => match c.location {
            Some(l) if l.latitude.is_finite() && l.longitude.is_finite() => {
                msg.kind = MessageKind::Location;
                msg.location = Some(Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    name: l.name,
                    address: l.address,
                });
            }
            _ => return missing(msg),
        },
        "contacts" => {
            let Some(cards) = c.contacts.and_then(|raw| raw_array(raw, MAX_CONTACTS).ok()) else {
                return missing(msg);
            };
            if cards.beyond > 0 {
                note = Some("too_many_contacts");
            }
            msg.kind = MessageKind::Contacts;
            msg.contacts = cards
                .items
                .into_iter()
                .filter_map(|raw| raw_as::<ContactCard>(Some(raw)))
                .map(|c| Contact {
                    name: c
                        .name
                        .and_then(|n| non_empty(n.formatted_name.as_deref()).or(n.first_name)),
                    phones: c
                        .phones
                        .into_iter()
                        .filter_map(|p| p.phone.or(p.wa_id))
                        .collect(),
                })
                .collect();
        }
        "interactive" => {
            let Some(i) = c.interactive else {
                return missing(msg);
            };
            msg.kind = MessageKind::Interactive;
            msg.provider_type = Some(i.kind.clone());
            match i.kind.as_str() {
                "button_reply" | "list_reply" => {
                    let r = if i.kind == "button_reply" {
                        i.button_reply
                    } else {
                        i.list_reply
                    };
                    match r {
                        Some(r) => {
                            msg.provider_type = None;
                            msg.reply = Some(Reply {
                                id: r.id,
                                title: r.title,
                            });
                        }
                        None => note = Some("missing_object"),
                    }
                }
                "nfm_reply" => {
                    // A WhatsApp Flow's answer (or an address form): its JSON is the content.
                    let n = i.nfm_reply;
                    if let Some(name) = n.as_ref().and_then(|n| non_empty(n.name.as_deref())) {
                        msg.reply = Some(Reply {
                            id: name.clone(),
                            title: name,
                        });
                    }
                    msg.text = n.and_then(|n| n.response_json.or(n.body));
                }
                "call_permission_reply" => match i.call_permission_reply {
                    Some(r) => msg.reply = Some(call_permission(r)),
                    None => note = Some("missing_object"),
                },
                _ => {}
            }
        }
        "button" => match c.button {
            Some(b) => {
                msg.kind = MessageKind::Button;
                msg.reply = Some(Reply {
                    id: b.payload.unwrap_or_else(|| b.text.clone()),
                    title: b.text,
                });
            }
            None => return missing(msg),
        },
        "reaction" => match c.reaction {
            Some(r) => {
                msg.kind = MessageKind::Reaction;
                msg.reaction = Some(Reaction {
                    message_id: r.message_id,
                    emoji: non_empty(r.emoji.as_deref()),
                });
            }
            None => return missing(msg),
        },
        "system" => {
            msg.kind = MessageKind::Other;
            msg.provider_type = Some("system".into());
            msg.text = c.system.and_then(|s| s.body);
        }
        // unsupported, order, request_welcome, ...: kept as `other`, never dropped.
        other => {
            fallback(msg);
            msg.text = c.text.map(|t| t.body);
            if other.is_empty() {
                note = Some("no_type");
            }
        }
    }
    note
}

/// A call permission answer as a reply: `id` is Meta's `response` (`accept` or `reject`), the
/// title says for how long (`accept (permanent)`, `accept (until 2026-05-26T12:57:23.000Z)`).
fn call_permission(r: CallPermissionReply) -> Reply {
    let until = r
        .expiration_timestamp
        .as_deref()
        .and_then(unix_secs_raw)
        .map(Millis::rfc3339);
    let title = match (r.is_permanent == Some(true), until) {
        (true, _) => format!("{} (permanent)", r.response),
        (false, Some(t)) => format!("{} (until {t})", r.response),
        (false, None) => r.response.clone(),
    };
    Reply {
        id: r.response,
        title,
    }
}
