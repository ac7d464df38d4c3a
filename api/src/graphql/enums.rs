//! GraphQL enums mirroring the engine's closed value sets.

use async_graphql::Enum;
use rapport_engine::intelligence::models::classifier::Algorithm;
use rapport_engine::values;

macro_rules! mirror {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl From<$name> for values::$name {
            fn from(x: $name) -> Self {
                match x { $($name::$variant => values::$name::$variant),+ }
            }
        }

        impl From<values::$name> for $name {
            fn from(x: values::$name) -> Self {
                match x { $(values::$name::$variant => $name::$variant),+ }
            }
        }

        impl $name {
            /// Reads the stored text of this enum.
            pub fn from_db(raw: &str) -> Self {
                values::$name::from_db(raw).into()
            }
        }
    };
}

mirror!(
    /// How a contact can be reached.
    ConsentChannel { Email }
);
mirror!(
    /// What a message is for.
    ConsentPurpose { Marketing, Transactional }
);
mirror!(
    /// Where a contact's consent stands.
    ConsentStatus { Granted, Pending, Denied, Withdrawn }
);
mirror!(
    /// The GDPR Art. 6 basis a processing rests on.
    LawfulBasis { Consent, Contract, LegalObligation, LegitimateInterest }
);
mirror!(
    /// Why an address is suppressed.
    SuppressionReason { Manual, HardBounce, Complaint, Erased }
);
mirror!(
    /// What a typed custom field holds.
    FieldKind { Text, Number, Date, Boolean, Enum, MultiSelect }
);
mirror!(
    /// A contact field a hosted sign-up form asks besides the email address.
    FormField { FirstName, LastName, Phone }
);
mirror!(
    /// Coarse churn-risk bands: low below 0.3, high from 0.7.
    RiskLevel { Low, Medium, High }
);
mirror!(
    /// The named RFM segments.
    RfmSegment { Champions, Loyal, NewCustomers, PotentialLoyalists, AtRisk, Hibernating, Lost }
);
mirror!(
    /// The built-in models trained per workspace.
    ModelKind { LeadScore, WinProbability, CustomerValue, Recommendations, BehaviourSegments, Churn }
);
mirror!(
    /// Where a trained model version stands.
    ModelStatus { Active, Candidate, Retired, InsufficientData }
);
mirror!(
    /// Where a contact stands in the customer lifecycle.
    LifecycleStage { Lead, Qualified, Opportunity, Customer, Churned, Lost }
);
mirror!(
    /// Whether a deal is still being worked.
    DealStatus { Open, Won, Lost }
);
mirror!(
    /// What kind of interaction an activity records.
    ActivityKind { Email, Call, Meeting, Note, Chat, Social }
);
mirror!(
    /// Who started an interaction.
    Direction { Inbound, Outbound }
);
mirror!(
    /// Progress of a task.
    TaskStatus { Open, Done, Cancelled }
);
mirror!(
    /// Progress of an inquiry.
    InquiryStatus { Open, Pending, Closed }
);
mirror!(
    /// The channel an inquiry arrived on.
    InquiryChannel { Email, Phone, Chat, WebForm, Social }
);
mirror!(
    /// Urgency of an inquiry.
    Priority { Low, Normal, High, Urgent }
);
mirror!(
    /// Progress of an order.
    OrderStatus { Pending, Paid, Fulfilled, Cancelled, Refunded }
);
mirror!(
    /// A team member's role.
    UserRole { Admin, Manager, Member, Viewer }
);
mirror!(
    /// What an API key may do.
    Scope { Read, Write, Admin }
);
mirror!(
    /// Where a campaign stands.
    CampaignStatus { Draft, Scheduled, Sending, Paused, Sent, Cancelled }
);
mirror!(
    /// What became of one campaign email.
    MessageState { Queued, Held, Sending, Sent, Skipped, Failed, Bounced, Cancelled, Unknown }
);
mirror!(
    /// Where a drip sequence stands: only active sequences enroll and advance contacts.
    SequenceStatus { Draft, Active, Paused, Archived }
);
mirror!(
    /// Where one contact's run through a sequence stands.
    EnrollmentStatus { Active, Completed, Exited }
);
mirror!(
    /// How the winner of an A/B test is chosen.
    WinnerMetric { Open, Click }
);

/// Which classifier the lead score, win probability and churn models fit.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClassifierAlgorithm {
    /// Logistic regression: one push per feature.
    Logistic,
    /// Gradient-boosted trees: interactions, gaps and text levels natively.
    Boosted,
    /// Both on the same rows; the better validation AUC is kept.
    Auto,
}

impl From<ClassifierAlgorithm> for Algorithm {
    fn from(x: ClassifierAlgorithm) -> Self {
        match x {
            ClassifierAlgorithm::Logistic => Algorithm::Logistic,
            ClassifierAlgorithm::Boosted => Algorithm::Boosted,
            ClassifierAlgorithm::Auto => Algorithm::Auto,
        }
    }
}

impl From<Algorithm> for ClassifierAlgorithm {
    fn from(x: Algorithm) -> Self {
        match x {
            Algorithm::Logistic => ClassifierAlgorithm::Logistic,
            Algorithm::Boosted => ClassifierAlgorithm::Boosted,
            Algorithm::Auto => ClassifierAlgorithm::Auto,
        }
    }
}
