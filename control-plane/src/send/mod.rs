//! The send path: the dispatch of one message to its session's worker
//! (`dispatch`) and the sends in flight on this replica (`tracker`).

pub(crate) mod dispatch;
pub(crate) mod tracker;
