//! Closed sets of values: the enums stored as lower-case text ([`TextEnum`]), and what a
//! plugin scores ([`PluginSubject`]).

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::excerpt;

/// A closed set of values stored as lower-case text (see the enums below), for code that
/// handles any of them alike, such as the filter language's enum conditions.
pub trait TextEnum: Copy + Sized + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// The stored spelling.
    fn as_str(&self) -> &'static str;
    /// Parses the stored spelling (case-insensitive); `field` names the input in errors.
    fn parse(field: &str, raw: &str) -> Result<Self>;
}

/// Declares a closed set of text values stored as lower-case text in the database.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(
                #[doc = $text]
                $variant
            ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored spelling.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the stored spelling (case-insensitive).
            pub fn parse(field: &str, raw: &str) -> Result<Self> {
                let lower = raw.trim().to_ascii_lowercase();
                match lower.as_str() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(EngineError::invalid(
                        field,
                        format!("'{}' is not one of {}", excerpt(raw), [$($text),+].join(", ")),
                    )),
                }
            }

            /// Reads a value that the database holds; unknown text (written by a newer
            /// version) falls back to the first variant rather than failing the read.
            pub fn from_db(raw: &str) -> Self {
                Self::parse("", raw).unwrap_or(Self::ALL[0])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TextEnum for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn as_str(&self) -> &'static str {
                $name::as_str(self)
            }
            fn parse(field: &str, raw: &str) -> Result<Self> {
                $name::parse(field, raw)
            }
        }
    };
}

text_enum!(
    /// Where a contact stands in the customer lifecycle.
    LifecycleStage { Lead => "lead", Qualified => "qualified", Opportunity => "opportunity", Customer => "customer", Churned => "churned", Lost => "lost" }
);
text_enum!(
    /// Whether a deal is still being worked.
    DealStatus { Open => "open", Won => "won", Lost => "lost" }
);
text_enum!(
    /// What kind of interaction an activity records.
    ActivityKind { Email => "email", Call => "call", Meeting => "meeting", Note => "note", Chat => "chat", Social => "social" }
);
text_enum!(
    /// Who started an interaction.
    Direction { Inbound => "inbound", Outbound => "outbound" }
);
text_enum!(
    /// Progress of a task.
    TaskStatus { Open => "open", Done => "done", Cancelled => "cancelled" }
);
text_enum!(
    /// Progress of an inquiry.
    InquiryStatus { Open => "open", Pending => "pending", Closed => "closed" }
);
text_enum!(
    /// The channel an inquiry arrived on.
    InquiryChannel { Email => "email", Phone => "phone", Chat => "chat", WebForm => "web_form", Social => "social" }
);
text_enum!(
    /// Urgency of an inquiry.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
);
text_enum!(
    /// What a person may do in the workspace: a viewer reads; a member changes the records
    /// they own and those nobody owns; a manager changes any record; an admin also manages
    /// people, keys and settings.
    UserRole { Admin => "admin", Manager => "manager", Member => "member", Viewer => "viewer" }
);
text_enum!(
    /// Progress of an order.
    OrderStatus { Pending => "pending", Paid => "paid", Fulfilled => "fulfilled", Cancelled => "cancelled", Refunded => "refunded" }
);
text_enum!(
    /// How a contact can be reached.
    ConsentChannel { Email => "email" }
);
text_enum!(
    /// What a message is for: marketing needs consent, transactional mail serves a contract.
    ConsentPurpose { Marketing => "marketing", Transactional => "transactional" }
);
text_enum!(
    /// Where a contact's consent stands.
    ConsentStatus { Granted => "granted", Pending => "pending", Denied => "denied", Withdrawn => "withdrawn" }
);
text_enum!(
    /// The GDPR Art. 6 basis a processing rests on.
    LawfulBasis { Consent => "consent", Contract => "contract", LegalObligation => "legal_obligation", LegitimateInterest => "legitimate_interest" }
);
text_enum!(
    /// A contact field a hosted sign-up form may ask besides the email address.
    FormField { FirstName => "first_name", LastName => "last_name", Phone => "phone" }
);
text_enum!(
    /// A change an app can hear about through a webhook endpoint (`webhook.test` is what
    /// `sendTestWebhook` sends).
    WebhookEventType {
        ContactCreated => "contact.created", ContactUpdated => "contact.updated",
        ContactDeleted => "contact.deleted", ContactMerged => "contact.merged",
        DealCreated => "deal.created", DealStageChanged => "deal.stage_changed",
        DealWon => "deal.won", DealLost => "deal.lost",
        ActivityCreated => "activity.created", OrderCreated => "order.created",
        ConsentChanged => "consent.changed",
        MessageSent => "message.sent", MessageOpened => "message.opened",
        MessageClicked => "message.clicked", MessageBounced => "message.bounced",
        MessageUnsubscribed => "message.unsubscribed",
        EnrollmentStarted => "sequence.enrollment.started",
        EnrollmentCompleted => "sequence.enrollment.completed",
        EnrollmentExited => "sequence.enrollment.exited",
        ScoreChanged => "score.changed",
        PluginDisabled => "plugin.disabled",
        WebhookTest => "webhook.test",
    }
);
text_enum!(
    /// Why an address is suppressed.
    SuppressionReason { Manual => "manual", HardBounce => "hard_bounce", Complaint => "complaint", Erased => "erased" }
);
text_enum!(
    /// The built-in models that are trained per workspace and score contacts or deals.
    ModelKind { LeadScore => "lead_score", WinProbability => "win_probability", CustomerValue => "customer_value", Recommendations => "recommendations", BehaviourSegments => "behaviour_segments", Churn => "churn" }
);
text_enum!(
    /// How likely a customer is to have stopped buying, in bands: low below 0.3, high
    /// from 0.7.
    RiskLevel { Low => "low", Medium => "medium", High => "high" }
);
text_enum!(
    /// The named RFM segments (recency, frequency, monetary), checked in this order.
    RfmSegment { Champions => "champions", Loyal => "loyal", NewCustomers => "new_customers", PotentialLoyalists => "potential_loyalists", AtRisk => "at_risk", Hibernating => "hibernating", Lost => "lost" }
);
text_enum!(
    /// How a churn risk was worked out: BG/NBD's P(alive) for repeat buyers, the
    /// engagement classifier for the others.
    ChurnMethod { BgNbd => "bg_nbd", EngagementClassifier => "engagement_classifier" }
);

text_enum!(
    /// What a typed custom field holds.
    FieldKind { Text => "text", Number => "number", Date => "date", Boolean => "boolean", Enum => "enum", MultiSelect => "multi_select" }
);
text_enum!(
    /// What an `insight_changes` row records the change of.
    InsightField { ChurnLevel => "churn_level", RfmSegment => "rfm_segment" }
);

impl RiskLevel {
    /// The band of a risk between 0 and 1.
    pub fn of(risk: f64) -> Self {
        if risk >= 0.7 {
            RiskLevel::High
        } else if risk >= 0.3 {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

text_enum!(
    /// Where a trained model version stands.
    ModelStatus { Active => "active", Candidate => "candidate", Retired => "retired", InsufficientData => "insufficient_data" }
);
text_enum!(
    /// Where a campaign stands.
    CampaignStatus { Draft => "draft", Scheduled => "scheduled", Sending => "sending", Paused => "paused", Sent => "sent", Cancelled => "cancelled" }
);
text_enum!(
    /// What became of one campaign email.
    MessageState { Queued => "queued", Held => "held", Sending => "sending", Sent => "sent", Skipped => "skipped", Failed => "failed", Bounced => "bounced", Cancelled => "cancelled", Unknown => "unknown" }
);
text_enum!(
    /// How the winner of an A/B test is chosen.
    WinnerMetric { Open => "open", Click => "click" }
);
text_enum!(
    /// Where a drip sequence stands: only active sequences enroll and advance contacts.
    SequenceStatus { Draft => "draft", Active => "active", Paused => "paused", Archived => "archived" }
);
text_enum!(
    /// Where one contact's run through a sequence stands.
    EnrollmentStatus { Active => "active", Completed => "completed", Exited => "exited" }
);
text_enum!(
    /// What an API key may do.
    Scope { Read => "read", Write => "write", Admin => "admin" }
);

/// What a plugin scores: the record its input query's id variable names. A plugin keeps
/// one subject across its versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginSubject {
    /// A person (`$contactId`): scores on `Contact.scores`, actions, hooks, shadows,
    /// backtests and sequence steps.
    #[default]
    Contact,
    /// A deal (`$dealId`): scores on `Deal.scores` (deal risk, say).
    Deal,
    /// A company (`$companyId`): scores on `Company.scores` (an account score).
    Company,
}

impl PluginSubject {
    /// Every subject.
    pub const ALL: [PluginSubject; 3] = [
        PluginSubject::Contact,
        PluginSubject::Deal,
        PluginSubject::Company,
    ];

    /// The name stored and shown (`contact`, `deal`, `company`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginSubject::Contact => "contact",
            PluginSubject::Deal => "deal",
            PluginSubject::Company => "company",
        }
    }

    /// The input query's id variable, without `$`.
    pub fn variable(self) -> &'static str {
        match self {
            PluginSubject::Contact => "contactId",
            PluginSubject::Deal => "dealId",
            PluginSubject::Company => "companyId",
        }
    }

    /// The subject whose id variable is `name`, if any.
    pub fn of_variable(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.variable() == name)
    }

    /// Parses a stored or given subject name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| EngineError::invalid("subject", "must be contact, deal or company"))
    }
}
