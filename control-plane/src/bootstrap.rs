//! The bootstrap administrator.

use crate::error::CpResult;
use crate::persistence::enums::UserRole;
use crate::persistence::users;
use crate::services::auth::create_user;
use crate::state::SharedState;
use crate::validation;

/// Creates an ADMINISTRATOR with this email if no user has it. Returns true
/// when it created one.
pub async fn ensure_admin(state: &SharedState, email: &str, password: &str) -> CpResult<bool> {
    let email = validation::email(email)?;
    crate::auth::password_policy::check(password, &email, "Administrator")?;
    let exists = users::count_with_email(&state.db, &email).await? > 0;
    if exists {
        return Ok(false);
    }
    create_user(state, "Administrator".into(), email, password.to_owned(), UserRole::Administrator).await?;
    Ok(true)
}

/// True when at least one administrator exists.
pub async fn has_admin(state: &SharedState) -> CpResult<bool> {
    Ok(users::count_administrators(&state.db).await? > 0)
}
