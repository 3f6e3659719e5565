//! Closed sets of words the product uses for states and sources: each is an enum, written to
//! the wire and the store as the same word it always was (`lost`, `skipped-overlap`,
//! `event:webhook`), so nothing on disk or on the wire changes while the code matches on
//! variants, never on strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum of fixed words: `as_str`, `Display`, `FromStr`, serde as the word, and comparison
/// with a `&str` (so `fate == "fired"` reads as it always did).
macro_rules! words {
    ($(#[$meta:meta])* $name:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord::new($what, s, $name::ALL.iter().map(|v| v.as_str())))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// A word outside its set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a {what} ({expected})")]
pub struct UnknownWord {
    what: &'static str,
    text: String,
    expected: String,
}

impl UnknownWord {
    fn new<'a>(what: &'static str, text: &str, words: impl Iterator<Item = &'a str>) -> Self {
        UnknownWord {
            what,
            text: text.to_owned(),
            expected: words.collect::<Vec<_>>().join(", "),
        }
    }
}

/// How the fixed trigger sources and the open-ended one are listed in errors.
const TRIGGER_SOURCES: &str = "cli, tui, api, schedule, retry, rerun or event:<name>";

words! {
    /// Where an agent stands with the principal.
    AgentState("agent state") {
        /// Registered and heartbeating.
        Alive = "alive",
        /// Silent for longer than the heartbeat timeout: its runs were crashed.
        Lost = "lost",
        /// Deregistered itself (a clean shutdown).
        Gone = "gone",
    }
}

words! {
    /// What became of one schedule slot.
    SlotFate("slot fate") {
        Fired = "fired",
        /// `overlap: skip` while an earlier run was active.
        SkippedOverlap = "skipped-overlap",
        /// Not run: the principal was down, the scheduler fell behind, or it could not start.
        Missed = "missed",
        /// Run late, for a slot missed while the principal was down (`catchup`).
        CaughtUp = "caught-up",
        /// Due while the schedule was paused.
        Paused = "paused",
    }
}

words! {
    /// What a credential may do.
    Role("role") {
        /// Register, heartbeat, pull work and report, only for its own agent id.
        Agent = "agent",
        /// Everything a human operator does.
        Operator = "operator",
        /// Read only: status, lists, runs, logs, the live stream.
        Viewer = "viewer",
        /// Only trigger runs (event listeners).
        Trigger = "trigger",
    }
}

words! {
    /// A fault injection point (only on a principal started with `CDKTR_FAILPOINTS=1`).
    Failpoint("failpoint") {
        /// Every store write fails for the duration (and is journaled).
        StoreWrites = "store_writes",
        /// The next store write waits for the duration.
        StoreStall = "store_stall",
        /// The store's writer thread stops for the duration (the watchdog's test).
        StoreWedge = "store_wedge",
        /// The coordinator panics handling its next control request.
        CorePanic = "core_panic",
    }
}

/// What queued a run: a fixed source, or `event:<name>` for an event listener.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TriggerSource {
    Cli,
    Tui,
    Api,
    Schedule,
    Retry,
    Rerun,
    /// An event listener; the name is ASCII letters, digits, `-`, `_` and `.`.
    Event(String),
}

impl TriggerSource {
    const FIXED: [TriggerSource; 6] = [
        TriggerSource::Cli,
        TriggerSource::Tui,
        TriggerSource::Api,
        TriggerSource::Schedule,
        TriggerSource::Retry,
        TriggerSource::Rerun,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            TriggerSource::Cli => "cli",
            TriggerSource::Tui => "tui",
            TriggerSource::Api => "api",
            TriggerSource::Schedule => "schedule",
            TriggerSource::Retry => "retry",
            TriggerSource::Rerun => "rerun",
            TriggerSource::Event(word) => word,
        }
    }
}

impl FromStr for TriggerSource {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        if let Some(fixed) = TriggerSource::FIXED.iter().find(|f| f.as_str() == s) {
            return Ok(fixed.clone());
        }
        let event_name_ok = s.strip_prefix("event:").is_some_and(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
        if event_name_ok {
            Ok(TriggerSource::Event(s.to_owned()))
        } else {
            Err(UnknownWord {
                what: "trigger source",
                text: s.to_owned(),
                expected: TRIGGER_SOURCES.to_owned(),
            })
        }
    }
}

impl fmt::Display for TriggerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for TriggerSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TriggerSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<&str> for TriggerSource {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_as_the_strings_they_always_were() {
        for fate in SlotFate::ALL {
            let json = serde_json::to_string(fate).unwrap();
            assert_eq!(json, format!("\"{}\"", fate.as_str()));
            assert_eq!(serde_json::from_str::<SlotFate>(&json).unwrap(), *fate);
        }
        assert_eq!(SlotFate::SkippedOverlap, "skipped-overlap");
        assert_eq!(AgentState::Lost.to_string(), "lost");
        assert!("dead"
            .parse::<AgentState>()
            .unwrap_err()
            .to_string()
            .contains("alive, lost, gone"));
    }

    #[test]
    fn trigger_sources_are_fixed_words_or_named_events() {
        assert_eq!("cli".parse::<TriggerSource>(), Ok(TriggerSource::Cli));
        assert_eq!(
            "event:web-hook_1.x".parse::<TriggerSource>(),
            Ok(TriggerSource::Event("event:web-hook_1.x".into()))
        );
        for bad in ["", "event:", "event:a b", "CLI", "event:$(x)"] {
            let e = bad.parse::<TriggerSource>().unwrap_err().to_string();
            assert!(e.contains("event:<name>"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&TriggerSource::Event("event:files".into())).unwrap();
        assert_eq!(json, "\"event:files\"");
    }
}
