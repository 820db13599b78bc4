//! The Lua scripts, loaded once per process. Each `.lua` file's header states its keys,
//! arguments, reply and why it is atomic and safe to retry.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static ACCEPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/accept.lua")));
pub(crate) static DECIDE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/decide.lua")));
pub(crate) static ACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/ack.lua")));
pub(crate) static ROLLBACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/rollback.lua")));
pub(crate) static WARM_BEGIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/warm_begin.lua")));
pub(crate) static WARM_HOLDERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/warm_holders.lua")));
pub(crate) static WARM_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/warm_finish.lua")));
pub(crate) static WARM_ABANDON: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/warm_abandon.lua")));
pub(crate) static WARM_INVALIDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/warm_invalidate.lua")));
pub(crate) static CLOSE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/close.lua")));
pub(crate) static ADD_STOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/add_stock.lua")));
pub(crate) static STATS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/stats.lua")));
pub(crate) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/dead_letter.lua")));
pub(crate) static REPLAY_DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/replay_dead_letter.lua")));
pub(crate) static WAITING_ROOM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/waiting_room.lua")));
pub(crate) static REQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/requeue.lua")));

/// An invocation of a script that decides requests (`accept.lua`, `decide.lua`): both take the
/// campaign's meta, queue, holders, log and dirty flag as KEYS[1..5] and the status key prefix as
/// ARGV[1], in that order. The caller adds its own arguments after these.
pub(crate) fn deciding<'a>(
    script: &'a Script,
    keys: &crate::keys::CampaignKeys,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.meta)
        .key(&keys.queue)
        .key(&keys.holders)
        .key(&keys.log)
        .key(&keys.dirty)
        .arg(&keys.status_prefix);
    invocation
}
