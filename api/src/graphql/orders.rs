//! Sort orders of every list: `orderBy: [XOrder!]` over several fields, ties falling to
//! the id in the direction of the last field.

use async_graphql::{Enum, InputObject};
use rapport_engine::platform::pagination::SortDirection;
use rapport_schema as s;

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

impl From<OrderDirection> for SortDirection {
    fn from(d: OrderDirection) -> Self {
        match d {
            OrderDirection::Asc => SortDirection::Asc,
            OrderDirection::Desc => SortDirection::Desc,
        }
    }
}

/// What sorting by a typed field adds to a request's cost: the database reads the field
/// of every contact that matches the filter and sorts them all, whatever the page size.
pub const ATTRIBUTE_ORDER_COST: usize = 10 * crate::graphql::filters::FILTER_READ_COST;

/// Sort contacts by a typed custom field (numbers as numbers, dates in time), contacts
/// without a value last; `orderBy` then breaks ties, in the same direction.
#[derive(InputObject, Clone, Debug)]
pub struct AttributeOrder {
    /// The declared field's key (`seats`).
    pub key: String,
    #[graphql(default)]
    pub direction: OrderDirection,
}

macro_rules! entity_order {
    ($(#[$doc:meta])* $order:ident, $field_enum:ident, $module:ident { $($variant:ident => $col:ident),+ $(,)? }) => {
        /// A field to sort by.
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $field_enum {
            $(
                #[allow(missing_docs)]
                $variant
            ),+
        }

        $(#[$doc])*
        #[derive(InputObject, Clone, Debug)]
        pub struct $order {
            pub field: $field_enum,
            #[graphql(default)]
            pub direction: OrderDirection,
        }

        impl $order {
            /// The sort keys of an `orderBy` list (empty when none was given).
            pub fn keys(list: &Option<Vec<$order>>) -> Vec<(s::$module::Column, SortDirection)> {
                list.iter()
                    .flatten()
                    .map(|o| {
                        let col = match o.field { $($field_enum::$variant => s::$module::Column::$col),+ };
                        (col, o.direction.into())
                    })
                    .collect()
            }
        }
    };
}

entity_order!(
    /// Sort contacts by.
    ContactOrder, ContactOrderField, contact { Id => Id, FirstName => FirstName, LastName => LastName, LifecycleStage => LifecycleStage, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort companies by.
    CompanyOrder, CompanyOrderField, company { Id => Id, Name => Name, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort deals by.
    DealOrder, DealOrderField, deal { Id => Id, Name => Name, AmountMinor => AmountMinor, Status => Status, CreatedAt => CreatedAt, UpdatedAt => UpdatedAt }
);
entity_order!(
    /// Sort activities by.
    ActivityOrder, ActivityOrderField, activity { Id => Id, OccurredAt => OccurredAt, Kind => Kind, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort tasks by.
    TaskOrder, TaskOrderField, task { Id => Id, Title => Title, Status => Status, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort inquiries by.
    InquiryOrder, InquiryOrderField, inquiry { Id => Id, OpenedAt => OpenedAt, Status => Status, Priority => Priority, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort products by.
    ProductOrder, ProductOrderField, product { Id => Id, Sku => Sku, Name => Name, PriceMinor => PriceMinor, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort orders by.
    OrderOrder, OrderOrderField, order { Id => Id, PlacedAt => PlacedAt, TotalMinor => TotalMinor, Status => Status, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort events by.
    EventOrder, EventOrderField, event { Id => Id, OccurredAt => OccurredAt, EventType => EventType }
);
entity_order!(
    /// Sort users by.
    UserOrder, UserOrderField, user { Id => Id, Name => Name, Email => Email, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort teams by.
    TeamOrder, TeamOrderField, team { Id => Id, Name => Name, CreatedAt => CreatedAt }
);
entity_order!(
    /// Sort pipelines by.
    PipelineOrder, PipelineOrderField, pipeline { Id => Id, Name => Name, CreatedAt => CreatedAt }
);
