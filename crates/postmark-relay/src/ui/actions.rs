//! The two actions (`DELETE /api/messages/{id}`, `POST /api/messages/{id}/release`), for a
//! dry-run message or a dead letter. The server lets them run only with `ui_actions = true` and
//! the access token.

use super::Ui;
use super::store::{self, Place};
use crate::spool::{Header, QueueId};

/// An action's answer: the text to show, or an HTTP status and the reason.
pub type Answer = Result<String, (u16, String)>;

fn remove_dry_run(ui: &Ui, id: &QueueId) -> std::io::Result<()> {
    for ext in ["json", "eml", "envelope.json"] {
        match std::fs::remove_file(ui.spool.dry_run_dir().join(format!("{id}.{ext}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn io(e: std::io::Error) -> (u16, String) {
    (500, e.to_string())
}

fn neither(id: &QueueId) -> (u16, String) {
    (
        409,
        format!(
            "{id} is pending: only a dry-run message or a dead letter can be deleted or released here (see `postmark-relay queue`)"
        ),
    )
}

/// Deletes a dry-run message's files or a dead letter, for good.
pub fn delete(ui: &Ui, id: &QueueId, place: Place) -> Answer {
    match place {
        Place::DryRun => remove_dry_run(ui, id).map(|()| format!("{id}: dry-run output deleted")).map_err(io),
        Place::Dead => match ui.spool.purge(id).map_err(io)? {
            Some(_) => Ok(format!("{id}: dead letter deleted")),
            None => Err((404, format!("no message {id}"))),
        },
        Place::Queue | Place::Journal | Place::Delivered => Err(neither(id)),
    }
}

/// Hands a dead letter back to the queue, or queues a dry-run message for a relay that sends.
pub fn release(ui: &Ui, id: &QueueId, place: Place) -> Answer {
    match place {
        Place::Dead => {
            ui.spool.revive(id).map_err(io)?;
            ui.spool.request_retry(id).map_err(io)?;
            Ok(format!("{id}: moved from the dead letters back into the queue; it is sent again within seconds"))
        }
        Place::DryRun if ui.dry_run => Err((
            409,
            "the relay runs in dry-run: released, the message would only be written here again. Start the relay with \
             credentials to release dry-run messages to Postmark"
                .into(),
        )),
        Place::DryRun => {
            let loaded = store::load(&ui.spool, &ui.delivered, id, place).map_err(|e| (404, e))?;
            let Some(msg) = loaded.message else {
                return Err((409, format!("{id}: only the JSON was kept, not the message; it cannot be queued")));
            };
            let header = Header::new(msg.header.envelope, &msg.raw);
            ui.spool.store_as(id, &header, &msg.raw).map_err(|e| io(e.into_io()))?;
            ui.spool.request_retry(id).map_err(io)?;
            remove_dry_run(ui, id).map_err(io)?;
            Ok(format!("{id}: queued for Postmark"))
        }
        Place::Queue | Place::Journal | Place::Delivered => Err(neither(id)),
    }
}
