//! rushline's domain: the words of `CONTRACT.md` as types, and nothing that does I/O.
//!
//! # Layout
//!
//! A request's life, and where each of its types lives:
//!
//! - [`ids`]: every identifier a client or operator can send — [`CampaignId`], [`UserId`],
//!   [`RequestId`], [`IdempotencyKey`] — each built only by `parse`, so past the HTTP extractor no
//!   bare string is an id. [`RequestId`] also carries its campaign's [`SlotTag`], which is how a
//!   status lookup by request id alone finds the Redis slot its campaign lives in.
//! - [`campaign`]: what an operator creates ([`NewCampaign`] → [`CampaignSpec`]) and what anyone
//!   reads back ([`CampaignView`], [`CampaignStatus`]).
//! - [`request`]: what a client posts ([`IssueRequest`]) and reads back ([`AcceptedView`],
//!   [`RequestView`]); [`RequestStatus`] is the request's state machine (`queued` → one final
//!   status, never changed afterwards).
//! - [`standing`]: a user's place in a campaign's waiting room ([`QueueStanding`]).
//! - [`admin`]: what an operator sends and reads besides a campaign: [`CampaignPage`],
//!   [`AddStock`], [`CampaignStats`].
//! - [`waiting_room`]: the `waiting_room` option ([`WaitingRoomOptions`] → [`WaitingRoom`]), the
//!   queue figures a view shows ([`QueueFigures`]) and an operator's [`AdmissionChange`].
//! - [`shard`]: the `shards` option ([`ShardCount`]), a shard's [`ShardIndex`] and [`shard_of`],
//!   the stable user -> shard map.
//! - [`coupon`]: [`CouponCode`], the human-friendly `RL-XXXX-XXXX` code an issued request holds,
//!   minted by [`CouponCode::mint`] from the campaign's key and its coupon sequence number.
//! - [`record`]: [`CampaignRecord`], the interface Redis state is rebuilt through.
//! - [`timefmt`]: RFC 3339 UTC rendering shared by every JSON shape, and the range of instants
//!   rushline accepts.
//! - `text`: what "printable" means for a client's text (visible characters, NFC).
//! - [`number`]: whole JSON numbers as JSON Schema counts them (`5.0` is `5`).
//!
//! Every JSON shape is defined here once: the API serializes these types, the operator's CLI and
//! the load test deserialize them, and with the `openapi` feature they derive the OpenAPI schemas
//! the API serves (`openapi` holds the newtypes' schemas, each stating its `parse` rule).

pub mod admin;
pub mod campaign;
pub mod coupon;
pub mod error;
pub mod ids;
pub mod number;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod record;
pub mod request;
pub mod secret;
pub mod shard;
pub mod standing;
mod text;
pub mod timefmt;
pub mod waiting_room;

pub use admin::{AddStock, CampaignPage, CampaignStats};
pub use campaign::{
    CampaignName, CampaignSnapshot, CampaignSpec, CampaignStatus, CampaignView, DecideMode,
    NewCampaign, Stock, WaitingRoomState,
};
pub use coupon::CouponCode;
pub use error::ValidationError;
pub use ids::{CampaignId, IdempotencyKey, RequestId, SlotTag, UserId};
pub use record::CampaignRecord;
pub use request::{AcceptedView, Decision, IssueRequest, RequestStatus, RequestView};
pub use shard::{ShardCount, ShardIndex, shard_of};
pub use standing::{QueueStanding, QueueState};
pub use waiting_room::{AdmissionChange, QueueFigures, WaitingRoom, WaitingRoomOptions};
