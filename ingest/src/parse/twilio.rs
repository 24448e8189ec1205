//! Twilio WhatsApp webhooks: `application/x-www-form-urlencoded` parameters.
//!
//! `From`/`To` are `whatsapp:+<number>`: the user is `From`, the business number `To` (both
//! without the `whatsapp:` prefix). `MessageSid` is the identity. Twilio sends no timestamp and
//! adds parameters without notice, so unknown parameters are accepted (they are still part of the
//! signature). Media come as `NumMedia` + `MediaUrl{N}`/`MediaContentType{N}` (WhatsApp sends one
//! per message), locations as `Latitude`/`Longitude`, quick replies as `ButtonText`/`ButtonPayload`,
//! and the quoted message as `OriginalRepliedMessageSid`. A status callback posted to the same URL
//! (`MessageStatus` other than `received`) is acknowledged and counted.

use lull_core::message::{Location, Media, Reply, Sender};
use lull_core::{Message, MessageKind};

use super::{non_empty, Item, ParseError, Parsed};

/// Most parameters accepted in one request. Twilio sends about 20 for a WhatsApp message (two
/// more per media item, at most 10 media); the cap keeps a body of `a&a&a...` from becoming
/// millions of small allocations.
pub const MAX_PARAMS: usize = 256;

/// The decoded parameters, in body order (the signature sorts them itself).
pub fn params(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ParseError::new("twilio: body is not UTF-8"));
    }
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.len() == MAX_PARAMS {
            return Err(ParseError::new(format!(
                "twilio: more than {MAX_PARAMS} parameters"
            )));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn strip(addr: &str) -> String {
    let a = addr.trim();
    a.strip_prefix("whatsapp:").unwrap_or(a).to_string()
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ParseError> {
    get(params, name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ParseError::new(format!("twilio: missing {name}")))
}

/// Turns the parameters into at most one message.
pub fn parse(params: &[(String, String)]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    let sid = required(params, "MessageSid")
        .or_else(|_| required(params, "SmsMessageSid"))?
        .to_string();
    let from = strip(required(params, "From")?);
    let to = strip(required(params, "To")?);
    if let Some(status) = get(params, "MessageStatus").or(get(params, "SmsStatus")) {
        if status != "received" {
            // A status callback of an outbound message: the business is `From`.
            out.add_account(&from);
            out.ignored.push("status");
            return Ok(out);
        }
    }
    out.add_account(&to);

    let body = get(params, "Body").map(str::to_string);
    let sender = Sender {
        id: from.clone(),
        name: non_empty(get(params, "ProfileName")),
        phone: non_empty(get(params, "WaId")),
        alt_id: None,
    };
    let mut msg = Message::of_kind(sid, MessageKind::Text, sender);
    msg.reply_to = non_empty(get(params, "OriginalRepliedMessageSid"));

    let num_media = match get(params, "NumMedia").map(str::trim) {
        None | Some("") => 0,
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| ParseError::new("twilio: NumMedia is not a number"))?,
    };
    let lat = get(params, "Latitude");
    let lon = get(params, "Longitude");
    let message_type = get(params, "MessageType").map(str::trim).unwrap_or("");

    if num_media > 0 {
        let mime = non_empty(get(params, "MediaContentType0"));
        let url = non_empty(get(params, "MediaUrl0"))
            .ok_or_else(|| ParseError::new("twilio: NumMedia > 0 without MediaUrl0"))?;
        let m = mime.as_deref().unwrap_or("");
        msg.kind = if m.starts_with("image/webp") && message_type == "sticker" {
            MessageKind::Sticker
        } else if m.starts_with("image/") {
            MessageKind::Image
        } else if m.starts_with("audio/") {
            MessageKind::Audio
        } else if m.starts_with("video/") {
            MessageKind::Video
        } else {
            MessageKind::Document
        };
        msg.caption = body.filter(|b| !b.is_empty());
        msg.media = Some(Media {
            id: None,
            url: Some(url),
            mime_type: mime,
            filename: None,
            voice: false,
        });
        // Extra media are counted from the `MediaUrl{N}` parameters the body really holds,
        // never from `NumMedia` itself: a count taken from a request must not size anything.
        if num_media > 1 {
            let extra = params
                .iter()
                .filter(|(k, _)| {
                    k.strip_prefix("MediaUrl")
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(|n| n >= 1 && n < num_media)
                })
                .count();
            out.ignored.add("extra_media", extra);
        }
    } else if let (Some(lat), Some(lon)) = (lat, lon) {
        let parse = |s: &str, name: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| ParseError::new(format!("twilio: {name} is not a number")))
        };
        msg.kind = MessageKind::Location;
        msg.location = Some(Location {
            latitude: parse(lat, "Latitude")?,
            longitude: parse(lon, "Longitude")?,
            name: non_empty(get(params, "Label")),
            address: non_empty(get(params, "Address")),
        });
    } else if let Some(text) = non_empty(get(params, "ButtonText")) {
        msg.kind = MessageKind::Button;
        msg.reply = Some(Reply {
            id: non_empty(get(params, "ButtonPayload")).unwrap_or_else(|| text.clone()),
            title: text,
        });
    } else if !matches!(message_type, "" | "text") {
        // interactive, reaction, ... as Twilio names them: kept as `other`, never dropped.
        msg.kind = MessageKind::Other;
        msg.provider_type = Some(message_type.to_string());
        msg.text = body;
    } else {
        msg.text = Some(body.unwrap_or_default());
    }
    out.items.push(Item {
        account: to,
        user: from,
        group: None,
        message: msg,
        opt_in: None,
    });
    Ok(out)
}
