//! `GET /v1/models`, `GET /v1/models/{id}`: the catalog.

use axum::extract::{Path, State};
use axum::response::Response;
use maximin_core::Error;
use maximin_types::{ErrorCode, ModelView};

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::AppState;

/// List the catalog's models, with availability on this install.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    security(("bearer" = [])),
    responses((status = 200, description = "`data` is the list of models", body = crate::openapi::ModelListResponse)))]
pub async fn list_models(State(app): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    let p = &app.platform;
    let listed = p.catalog_listing();
    // The account's own fine-tuned models, after the catalog's.
    let mine = p.fine_tuned_models(&ctx.caller.account.id).await?;
    if mine.is_empty() {
        return Ok(ctx.ok_raw(&listed.native));
    }
    let views: Vec<ModelView> = mine.iter().filter_map(|m| p.fine_tuned_view(m)).collect();
    Ok(ctx.ok_raw(&crate::ctx::join_arrays(&listed.native, &views)))
}

/// One model by id or alias.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Catalog id or alias")),
    responses(
        (status = 200, description = "`data` is the model", body = crate::openapi::ModelResponse),
        (status = 404, description = "`model_not_found`", body = crate::openapi::ErrorResponse)))]
pub async fn get_model(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = &app.platform;
    if id.starts_with("ft:") {
        let mine = p.fine_tuned_models(&ctx.caller.account.id).await?;
        let view = mine
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| p.fine_tuned_view(m));
        let view = view.ok_or_else(|| {
            maximin_core::finetune::jobs::model_not_found(&id).with("field", "id")
        })?;
        return Ok(ctx.ok(view));
    }
    let spec = p.catalog.resolve(&id).ok_or_else(|| {
        Error::new(
            ErrorCode::ModelNotFound,
            format!("No model '{id}' in the catalog."),
        )
        .with("field", "id")
        .with("model", id.as_str())
    })?;
    Ok(ctx.ok(p.model_view(spec)))
}
