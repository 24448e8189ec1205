//! Meta WhatsApp Cloud API webhooks (also 360dialog, which forwards the same body).
//!
//! One POST carries `entry[] x changes[] x (messages[] | statuses[])`. The business number is
//! `metadata.phone_number_id` (not the WABA id in `entry.id`): two numbers of one WABA talking to
//! one user are two conversations. Statuses and non-message fields are acknowledged and counted,
//! never buffered.
//!
//! ## User identity
//! Since April 2026 every user also has a business-scoped user id (BSUID: `from_user_id` on the
//! message, `user_id` in `contacts[]`), and for users with a username it is the only id: the
//! phone number (`from`, `wa_id`) may be withheld. The BSUID is present for every user while the
//! phone comes and goes, so lull keys the conversation on the **BSUID when the payload carries
//! one, else the phone number**. `Sender.id` is that key, `Sender.phone` the `wa_id`/`from` when
//! sent, `Sender.alt_id` the BSUID when sent.

use serde::Deserialize;
use serde_json::value::RawValue;

use lull_core::message::{Contact, Location, Media, Reaction, Reply, Sender};
use lull_core::{Message, MessageKind};

use super::{non_empty, unix_secs_raw, Item, ParseError, Parsed};

// Typed all the way down: no `serde_json::Value` tree, so memory stays close to the body's
// size. A change's `value` is kept as the raw slice of the body (borrowed, not copied) until its
// `field` says it holds messages: other fields have other shapes.

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    object: Option<String>,
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    changes: Vec<Change<'a>>,
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
    #[serde(default)]
    contacts: Vec<ContactEntry>,
    #[serde(default, borrow)]
    messages: Vec<Msg<'a>>,
    #[serde(default)]
    statuses: Vec<serde::de::IgnoredAny>,
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

#[derive(Deserialize)]
struct Msg<'a> {
    id: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_user_id: Option<String>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    group_id: Option<String>,
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
    #[serde(default)]
    contacts: Option<Vec<ContactCard>>,
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
}

#[derive(Deserialize)]
struct ReplyBody {
    id: String,
    title: String,
}

#[derive(Deserialize)]
struct NfmReply {
    #[serde(default)]
    response_json: Option<String>,
    #[serde(default)]
    body: Option<String>,
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
    for (ei, entry) in body.entry.into_iter().enumerate() {
        for (ci, change) in entry.changes.into_iter().enumerate() {
            if change.field.as_deref().is_some_and(|f| f != "messages") {
                // account_update, message_template_status_update, ...: not chat messages.
                out.ignored.push("field");
                continue;
            }
            let context = || format!("meta entry[{ei}].changes[{ci}].value");
            let raw = change
                .value
                .ok_or_else(|| ParseError::new(format!("{}: missing", context())))?;
            let value: ChangeValue<'_> =
                serde_json::from_str(raw.get()).map_err(|e| ParseError::json(&context(), &e))?;
            let account = value
                .metadata
                .map(|m| m.phone_number_id)
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| {
                    ParseError::new(format!(
                        "meta entry[{ei}].changes[{ci}]: missing metadata.phone_number_id"
                    ))
                })?;
            out.add_account(&account);
            out.ignored
                .extend(std::iter::repeat_n("status", value.statuses.len()));
            for (mi, msg) in value.messages.into_iter().enumerate() {
                let item = message(&account, &value.contacts, msg).map_err(|e| {
                    ParseError::new(format!(
                        "meta entry[{ei}].changes[{ci}].messages[{mi}]: {e}"
                    ))
                })?;
                out.items.push(item);
            }
        }
    }
    Ok(out)
}

fn message(account: &str, contacts: &[ContactEntry], m: Msg<'_>) -> Result<Item, String> {
    if m.id.trim().is_empty() {
        return Err("empty id".into());
    }
    // The contact entry of this sender: same phone, same BSUID, or the only one.
    let contact = contacts
        .iter()
        .find(|c| {
            (m.from.is_some() && c.wa_id == m.from)
                || (m.from_user_id.is_some() && c.user_id == m.from_user_id)
        })
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let phone = non_empty(m.from.as_deref())
        .or_else(|| contact.and_then(|c| non_empty(c.wa_id.as_deref())));
    let bsuid = non_empty(m.from_user_id.as_deref())
        .or_else(|| contact.and_then(|c| non_empty(c.user_id.as_deref())));
    let user_id = bsuid
        .clone()
        .or_else(|| phone.clone())
        .ok_or("no sender: neither from nor from_user_id")?;
    let sender = Sender {
        id: user_id.clone(),
        name: contact
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| non_empty(p.name.as_deref())),
        phone,
        alt_id: bsuid,
    };

    let mut msg = Message::of_kind(m.id, MessageKind::Other, sender);
    msg.sent_at = m.timestamp.and_then(unix_secs_raw);
    msg.reply_to = m.context.and_then(|c| non_empty(c.id.as_deref()));
    let missing = |what: &str| format!("type {what} without its {what} object");
    match m.kind.as_str() {
        "text" => {
            msg.kind = MessageKind::Text;
            msg.text = Some(m.text.ok_or_else(|| missing("text"))?.body);
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let (kind, body) = match m.kind.as_str() {
                "image" => (MessageKind::Image, m.image),
                "audio" => (MessageKind::Audio, m.audio),
                "video" => (MessageKind::Video, m.video),
                "document" => (MessageKind::Document, m.document),
                _ => (MessageKind::Sticker, m.sticker),
            };
            let b = body.ok_or_else(|| missing(&m.kind))?;
            msg.kind = kind;
            msg.caption = non_empty(b.caption.as_deref());
            msg.media = Some(Media {
                id: b.id,
                url: b.url,
                mime_type: b.mime_type,
                filename: b.filename,
                voice: b.voice.unwrap_or(false),
            });
        }
        "location" => {
            let l = m.location.ok_or_else(|| missing("location"))?;
            msg.kind = MessageKind::Location;
            msg.location = Some(Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: l.name,
                address: l.address,
            });
        }
        "contacts" => {
            msg.kind = MessageKind::Contacts;
            msg.contacts = m
                .contacts
                .ok_or_else(|| missing("contacts"))?
                .into_iter()
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
            let i = m.interactive.ok_or_else(|| missing("interactive"))?;
            msg.kind = MessageKind::Interactive;
            match i.kind.as_str() {
                "button_reply" | "list_reply" => {
                    let r = if i.kind == "button_reply" {
                        i.button_reply
                    } else {
                        i.list_reply
                    }
                    .ok_or_else(|| format!("interactive {} without its object", i.kind))?;
                    msg.reply = Some(Reply {
                        id: r.id,
                        title: r.title,
                    });
                }
                "nfm_reply" => {
                    // A WhatsApp Flow's answer: its JSON is the content.
                    msg.provider_type = Some("nfm_reply".into());
                    msg.text = i.nfm_reply.and_then(|n| n.response_json.or(n.body));
                }
                other => msg.provider_type = Some(other.to_string()),
            }
        }
        "button" => {
            let b = m.button.ok_or_else(|| missing("button"))?;
            msg.kind = MessageKind::Button;
            msg.reply = Some(Reply {
                id: b.payload.unwrap_or_else(|| b.text.clone()),
                title: b.text,
            });
        }
        "reaction" => {
            let r = m.reaction.ok_or_else(|| missing("reaction"))?;
            msg.kind = MessageKind::Reaction;
            msg.reaction = Some(Reaction {
                message_id: r.message_id,
                emoji: non_empty(r.emoji.as_deref()),
            });
        }
        "system" => {
            msg.provider_type = Some("system".into());
            msg.text = m.system.and_then(|s| s.body);
        }
        // unsupported, order, request_welcome, ...: kept as `other`, never dropped.
        other => {
            msg.provider_type = Some(other.to_string());
            msg.text = m.text.map(|t| t.body);
        }
    }
    let (user, group) = match non_empty(m.group_id.as_deref()) {
        Some(g) => (g.clone(), Some(g)),
        None => (user_id, None),
    };
    Ok(Item {
        account: account.to_string(),
        user,
        group,
        message: msg,
        opt_in: None,
    })
}
