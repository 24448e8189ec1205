use super::*;

const FIXED8: TurnPolicy = TurnPolicy::DEFAULT;

const TYPING: TypingRule = TypingRule {
    grace_ms: 1_500,
    hold_ms: 10_000,
    stop_grace_ms: None,
};

/// The typing rule with a stop grace longer than the grace after a message.
const LONG_STOP: TypingRule = TypingRule {
    stop_grace_ms: Some(6_000),
    ..TYPING
};

fn typing_fixed() -> TurnPolicy {
    TurnPolicy {
        typing: Some(TYPING),
        ..FIXED8
    }
}

fn adaptive(typing: Option<TypingRule>) -> TurnPolicy {
    TurnPolicy {
        quiet: QuietRule::Adaptive {
            min_ms: 1_000,
            max_ms: 10_000,
            prior_ms: 4_000,
        },
        max_wait_ms: 30_000,
        typing,
    }
}

fn window(opened: u64, last: u64) -> TurnInputs {
    TurnInputs {
        opened_at: Millis(opened),
        last_at: Millis(last),
        gaps: GapSummary::default(),
        presence: None,
        paused_until: None,
    }
}

fn presence(kind: PresenceKind, at: u64) -> Option<Presence> {
    Some(Presence {
        kind,
        at: Millis(at),
        sent_at: None,
    })
}

fn due_at(p: &TurnPolicy, w: &TurnInputs) -> (u64, TurnReason) {
    let d = due(p, w);
    (d.at.0, d.reason)
}

#[test]
fn default_is_the_fixed_quiet_period_and_max_wait() {
    let w = window(1_000, 5_000);
    assert_eq!(
        due(&FIXED8, &w),
        TurnDue {
            at: Millis(13_000),
            reason: TurnReason::Quiet,
            quiet_ms: 8_000
        }
    );
    // A chatty window hits max wait first.
    assert_eq!(
        due_at(&FIXED8, &window(1_000, 25_000)),
        (31_000, TurnReason::MaxWait)
    );
    // Equal: quiet wins the tie, as in the window's own rule.
    assert_eq!(
        due_at(&FIXED8, &window(0, 22_000)),
        (30_000, TurnReason::Quiet)
    );
}

#[test]
fn presence_is_ignored_without_a_typing_rule() {
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 2_000);
    assert_eq!(due_at(&FIXED8, &w), (9_000, TurnReason::Quiet));
}

#[test]
fn presence_flowing_shortens_a_fixed_quiet_to_the_grace() {
    // The composing that produced the message came before it.
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 200);
    assert_eq!(
        due(&typing_fixed(), &w),
        TurnDue {
            at: Millis(2_500),
            reason: TurnReason::TypingGrace,
            quiet_ms: 1_500
        }
    );
    // No presence at all for this conversation: the fixed quiet period.
    assert_eq!(
        due_at(&typing_fixed(), &window(0, 1_000)),
        (9_000, TurnReason::Quiet)
    );
    // Presence last seen long before this window opened: treated as presence-less.
    let mut w = window(PRESENCE_LIVE_MS + 10_000, PRESENCE_LIVE_MS + 10_000);
    w.presence = presence(PresenceKind::Available, 5_000);
    assert_eq!(due(&typing_fixed(), &w).reason, TurnReason::Quiet);
}

#[test]
fn composing_after_the_last_message_holds_until_the_typing_hold() {
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 1_800);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (11_800, TurnReason::TypingHold)
    );
    // Recording a voice note holds the same way.
    w.presence = presence(PresenceKind::Recording, 1_800);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (11_800, TurnReason::TypingHold)
    );
}

#[test]
fn paused_or_available_after_composing_releases_after_the_grace() {
    // The user typed after the message, then stopped: `paused` (Baileys, and so Evolution, reports
    // WhatsApp's `paused` as `available`) at 4 s lets the window close a grace later, not at the
    // typing hold.
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 2_000);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (12_000, TurnReason::TypingHold)
    );
    for kind in [PresenceKind::Paused, PresenceKind::Available] {
        w.presence = presence(kind, 4_000);
        assert_eq!(
            due(&typing_fixed(), &w),
            TurnDue {
                at: Millis(5_500),
                reason: TurnReason::TypingGrace,
                quiet_ms: 1_500
            }
        );
    }
    // Stopped within the grace after the message: the grace after the message rules.
    w.presence = presence(PresenceKind::Paused, 1_200);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (2_700, TurnReason::TypingGrace)
    );
    // Going offline says nothing about a next message: the grace after the message.
    w.presence = presence(PresenceKind::Unavailable, 1_200);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (2_500, TurnReason::TypingGrace)
    );
    // Under adaptive quiet the learned quiet period still applies from the message.
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Available, 1_500);
    assert_eq!(
        due_at(&adaptive(Some(TYPING)), &w),
        (5_000, TurnReason::AdaptiveQuiet)
    );
    w.presence = presence(PresenceKind::Paused, 4_500);
    assert_eq!(
        due_at(&adaptive(Some(TYPING)), &w),
        (6_000, TurnReason::TypingGrace)
    );
}

#[test]
fn max_wait_caps_composing() {
    let mut w = window(0, 25_000);
    w.presence = presence(PresenceKind::Composing, 26_000);
    assert_eq!(due_at(&typing_fixed(), &w), (30_000, TurnReason::MaxWait));
}

#[test]
fn a_composing_received_late_costs_at_most_the_hold() {
    // The composing that preceded the message at 1 s arrives 700 ms after it.
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 1_700);
    let d = due(&typing_fixed(), &w);
    assert_eq!(d.at, Millis(1_700 + 10_000));
    // A later message supersedes it: the late composing is now before the last message.
    w.last_at = Millis(3_000);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (4_500, TurnReason::TypingGrace)
    );
}

#[test]
fn an_out_of_order_composing_is_dropped() {
    // The user typed (gateway time 1.5 s), stopped (1.9 s); lull received `paused` first.
    let mut stored = None;
    Presence::apply(
        &mut stored,
        Presence {
            kind: PresenceKind::Paused,
            at: Millis(2_000),
            sent_at: Some(Millis(1_900)),
        },
    );
    let late = Presence {
        kind: PresenceKind::Composing,
        at: Millis(2_300),
        sent_at: Some(Millis(1_500)),
    };
    assert_eq!(
        Presence::apply(&mut stored, late),
        PresenceUpdate::OutOfOrder
    );
    let mut w = window(0, 1_000);
    w.presence = stored;
    // The stored `paused` (received at 2 s) releases the window a grace after it.
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (3_500, TurnReason::TypingGrace)
    );
    // The user goes offline (newer): the grace after the message rules.
    Presence::apply(
        &mut stored,
        Presence {
            kind: PresenceKind::Unavailable,
            at: Millis(2_400),
            sent_at: Some(Millis(2_350)),
        },
    );
    w.presence = stored;
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (2_500, TurnReason::TypingGrace)
    );
}

#[test]
fn a_presence_at_the_same_instant_as_the_message_speaks_about_that_message() {
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 1_000);
    assert_eq!(
        due_at(&typing_fixed(), &w),
        (2_500, TurnReason::TypingGrace)
    );
}

#[test]
fn adaptive_uses_the_prior_then_the_users_own_gaps() {
    let p = adaptive(None);
    assert_eq!(
        due(&p, &window(0, 1_000)),
        TurnDue {
            at: Millis(5_000),
            reason: TurnReason::AdaptiveQuiet,
            quiet_ms: 4_000
        }
    );
    let mut whole = window(0, 1_000);
    for _ in 0..30 {
        whole.gaps.observe(Activity::NextTurn);
    }
    assert_eq!(due_at(&p, &whole), (2_000, TurnReason::AdaptiveQuiet));
    let mut frag = window(0, 1_000);
    for _ in 0..100 {
        frag.gaps.observe(Activity::Continuation(20_000));
    }
    // Bounded by max.
    assert_eq!(due_at(&p, &frag), (11_000, TurnReason::AdaptiveQuiet));
}

#[test]
fn adaptive_with_typing_keeps_its_learned_quiet_and_obeys_presence() {
    let p = adaptive(Some(TYPING));
    let mut w = window(0, 1_000);
    w.presence = presence(PresenceKind::Composing, 500);
    for _ in 0..30 {
        w.gaps.observe(Activity::NextTurn);
    }
    assert_eq!(due_at(&p, &w), (2_000, TurnReason::AdaptiveQuiet));
    w.presence = presence(PresenceKind::Composing, 1_900);
    assert_eq!(due_at(&p, &w), (11_900, TurnReason::TypingHold));
}

#[test]
fn a_pause_holds_the_hand_off_past_everything() {
    let mut w = window(0, 1_000);
    w.paused_until = Some(Millis(1_800_000));
    assert_eq!(due_at(&FIXED8, &w), (1_800_000, TurnReason::Paused));
    // Past max wait too.
    let mut w = window(0, 25_000);
    w.paused_until = Some(Millis(40_000));
    assert_eq!(due_at(&FIXED8, &w), (40_000, TurnReason::Paused));
    // A pause that already ended changes nothing.
    let mut w = window(0, 1_000);
    w.paused_until = Some(Millis(500));
    assert_eq!(due_at(&FIXED8, &w), (9_000, TurnReason::Quiet));
    // Until resume: the far future.
    w.paused_until = Some(Millis(u64::MAX));
    assert_eq!(due(&FIXED8, &w).at, Millis(u64::MAX));
}

#[test]
fn never_early_and_presence_only_delays_on_random_inputs() {
    let mut rng = fastrand::Rng::with_seed(16);
    let kinds = [
        PresenceKind::Composing,
        PresenceKind::Recording,
        PresenceKind::Paused,
        PresenceKind::Available,
        PresenceKind::Unavailable,
    ];
    for _ in 0..20_000 {
        let policy = match rng.u8(0..5) {
            0 => FIXED8,
            1 => typing_fixed(),
            2 => adaptive(None),
            3 => adaptive(Some(TYPING)),
            _ => adaptive(Some(LONG_STOP)),
        };
        let opened = rng.u64(0..1_000_000);
        let last = opened + rng.u64(0..40_000);
        let mut w = window(opened, last);
        for _ in 0..rng.usize(0..20) {
            w.gaps.observe(if rng.bool() {
                Activity::Continuation(rng.u64(0..30_000))
            } else {
                Activity::NextTurn
            });
        }
        if rng.bool() {
            w.presence = presence(
                kinds[rng.usize(0..kinds.len())],
                last.saturating_sub(5_000) + rng.u64(0..20_000),
            );
        }
        if rng.u8(0..4) == 0 {
            w.paused_until = Some(Millis(opened + rng.u64(0..60_000)));
        }
        let d = due(&policy, &w);
        let max = opened + u64::from(policy.max_wait_ms);
        let floor = (last + u64::from(d.quiet_ms)).min(max);
        assert!(d.at.0 >= floor, "early: {d:?} {w:?} {policy:?}");
        let cap = max.max(w.paused_until.map_or(0, |u| u.0));
        assert!(d.at.0 <= cap.max(floor), "past max wait: {d:?} {w:?}");
        // Presence after the last message never makes the window due sooner.
        if let Some(p) = w.presence {
            if p.at > w.last_at {
                let mut before = w;
                before.presence = Some(Presence { at: w.last_at, ..p });
                assert!(due(&policy, &before).at <= d.at, "{w:?}");
            }
        }
        if d.reason == TurnReason::Paused {
            assert_eq!(Some(d.at), w.paused_until);
        }
        // A stop (`paused`/`available`) after the last message holds at most a grace past it.
        if let (Some(t), Some(p), None) = (policy.typing, w.presence, w.paused_until) {
            if matches!(p.kind, PresenceKind::Paused | PresenceKind::Available) {
                let released = floor.max(p.at.0 + u64::from(t.stop_grace())).min(max);
                assert!(d.at.0 <= released, "held past the grace: {d:?} {w:?}");
            }
        }
    }
}

#[test]
fn a_stop_after_the_last_message_holds_for_the_stop_grace_not_the_message_grace() {
    let policy = TurnPolicy {
        typing: Some(LONG_STOP),
        ..FIXED8
    };
    let mut w = window(0, 1_000);
    // Typing after the message, then a stop at 3 s: held until 3 s + 6 s.
    w.presence = presence(PresenceKind::Paused, 3_000);
    let d = due(&policy, &w);
    assert_eq!((d.at, d.reason), (Millis(9_000), TurnReason::TypingGrace));
    // Without a stop grace the stop releases after the message grace (1.5 s).
    assert_eq!(due(&typing_fixed(), &w).at, Millis(4_500));
    // A message with no presence after it still closes after the message grace.
    w.presence = presence(PresenceKind::Composing, 500);
    assert_eq!(due(&policy, &w).at, Millis(2_500));
    // Max wait still caps the stop grace.
    w.presence = presence(PresenceKind::Available, 28_000);
    assert_eq!(due(&policy, &w).reason, TurnReason::MaxWait);
}

#[test]
fn validate_names_the_bad_value() {
    assert!(TurnPolicy::DEFAULT.validate().is_ok());
    assert!(typing_fixed().validate().is_ok());
    assert!(adaptive(Some(TYPING)).validate().is_ok());
    let e = TurnPolicy {
        quiet: QuietRule::Adaptive {
            min_ms: 5_000,
            max_ms: 2_000,
            prior_ms: 3_000,
        },
        ..FIXED8
    }
    .validate()
    .unwrap_err();
    assert!(
        e.to_string().contains("5000") && e.to_string().contains("2000"),
        "{e}"
    );
    let e = TurnPolicy {
        typing: Some(TypingRule {
            grace_ms: 2_000,
            hold_ms: 1_000,
            stop_grace_ms: None,
        }),
        ..FIXED8
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("typing hold"), "{e}");
    for (stop, names) in [
        (0, "typing stop grace"),
        (40_000, "40000"),
        (15_000, "longer than typing hold"),
    ] {
        let e = TurnPolicy {
            typing: Some(TypingRule {
                stop_grace_ms: Some(stop),
                ..TYPING
            }),
            ..FIXED8
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains(names), "{e}");
    }
    let e = TurnPolicy {
        quiet: QuietRule::Fixed { ms: 40_000 },
        ..FIXED8
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("40000"), "{e}");
    let e = TurnPolicy {
        quiet: QuietRule::Fixed { ms: 0 },
        ..FIXED8
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("quiet period"), "{e}");
}

#[test]
fn policy_and_due_serialise_readably() {
    let json = serde_json::to_value(adaptive(Some(TYPING))).unwrap();
    assert_eq!(json["quiet"]["mode"], "adaptive");
    assert_eq!(json["typing"]["grace_ms"], 1_500);
    let back: TurnPolicy = serde_json::from_value(json).unwrap();
    assert_eq!(back, adaptive(Some(TYPING)));
    let d = due(&FIXED8, &window(0, 1_000));
    let json = serde_json::to_value(d).unwrap();
    assert_eq!(json["reason"], "quiet");
    assert_eq!(TurnReason::AdaptiveQuiet.as_str(), "adaptive_quiet");
}
