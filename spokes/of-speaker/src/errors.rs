//! A switch's OFPT_ERROR as the error code of the command it refused, the codes the
//! simulator answers with. What a switch refuses for the command's own sake (its match,
//! actions, instructions or meter) will be refused again: `BAD_COMMAND`. A full table is
//! `TABLE_FULL`. Anything else may be the switch's passing state: `UNKNOWN`, which is retried.
//!
//! | OFPT_ERROR type           | code                                   | answer        |
//! |---------------------------|----------------------------------------|---------------|
//! | OFPET_FLOW_MOD_FAILED     | OFPFMFC_TABLE_FULL                     | `TABLE_FULL`  |
//! | OFPET_METER_MOD_FAILED    | OFPMMFC_OUT_OF_METERS, _OUT_OF_BANDS   | `TABLE_FULL`  |
//! | OFPET_METER_MOD_FAILED    | any other (OVS: 2 for a missing meter) | `BAD_COMMAND` |
//! | OFPET_BAD_MATCH, _BAD_ACTION, _BAD_INSTRUCTION | any               | `BAD_COMMAND` |
//! | OFPET_FLOW_MOD_FAILED     | OFPFMFC_BAD_TABLE_ID, _BAD_TIMEOUT, _BAD_COMMAND, _BAD_FLAGS | `BAD_COMMAND` |
//! | anything else             |                                        | `UNKNOWN`     |

use hubspoke_fsm::{SbErrorCode, SbOutcome};
use hubspoke_openflow::consts::*;
use hubspoke_openflow::ErrorMessage;

/// The code for a switch's error; see the module's table.
pub fn error_code(error: &ErrorMessage) -> SbErrorCode {
    match (error.err_type, error.code) {
        (OFPET_FLOW_MOD_FAILED, OFPFMFC_TABLE_FULL)
        | (OFPET_METER_MOD_FAILED, OFPMMFC_OUT_OF_METERS | OFPMMFC_OUT_OF_BANDS) => {
            SbErrorCode::TableFull
        }
        (
            OFPET_METER_MOD_FAILED | OFPET_BAD_MATCH | OFPET_BAD_ACTION | OFPET_BAD_INSTRUCTION,
            _,
        )
        | (
            OFPET_FLOW_MOD_FAILED,
            OFPFMFC_BAD_TABLE_ID | OFPFMFC_BAD_TIMEOUT | OFPFMFC_BAD_COMMAND | OFPFMFC_BAD_FLAGS,
        ) => SbErrorCode::BadCommand,
        _ => SbErrorCode::Unknown,
    }
}

/// The command's answer for a switch's error, its type and code in the message.
pub fn error_outcome(error: &ErrorMessage) -> SbOutcome {
    SbOutcome::Error {
        code: error_code(error),
        message: format!(
            "the switch refused it: OFPT_ERROR type {} code {}",
            error.err_type, error.code
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err_type: u16, code: u16) -> SbErrorCode {
        error_code(&ErrorMessage {
            err_type,
            code,
            data: vec![],
        })
    }

    #[test]
    fn full_tables_are_table_full() {
        assert_eq!(
            code(OFPET_FLOW_MOD_FAILED, OFPFMFC_TABLE_FULL),
            SbErrorCode::TableFull
        );
        assert_eq!(
            code(OFPET_METER_MOD_FAILED, OFPMMFC_OUT_OF_METERS),
            SbErrorCode::TableFull
        );
        assert_eq!(
            code(OFPET_METER_MOD_FAILED, OFPMMFC_OUT_OF_BANDS),
            SbErrorCode::TableFull
        );
    }

    #[test]
    fn refusals_of_the_command_itself_are_bad_command() {
        // OVS's answer to a flow entry whose meter is missing
        assert_eq!(code(12, 2), SbErrorCode::BadCommand);
        assert_eq!(
            code(OFPET_METER_MOD_FAILED, OFPMMFC_BAD_RATE),
            SbErrorCode::BadCommand
        );
        assert_eq!(code(OFPET_BAD_MATCH, 3), SbErrorCode::BadCommand);
        assert_eq!(code(OFPET_BAD_ACTION, 4), SbErrorCode::BadCommand);
        assert_eq!(code(OFPET_BAD_INSTRUCTION, 1), SbErrorCode::BadCommand);
        assert_eq!(
            code(OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_COMMAND),
            SbErrorCode::BadCommand
        );
    }

    #[test]
    fn the_rest_is_unknown_and_retried() {
        for (err_type, error) in [
            (OFPET_FLOW_MOD_FAILED, OFPFMFC_UNKNOWN),
            (OFPET_FLOW_MOD_FAILED, OFPFMFC_EPERM),
            (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN),
            (OFPET_EXPERIMENTER, 7),
        ] {
            assert_eq!(code(err_type, error), SbErrorCode::Unknown);
            assert!(code(err_type, error).is_retryable());
        }
        let SbOutcome::Error { message, .. } = error_outcome(&ErrorMessage {
            err_type: 5,
            code: 1,
            data: vec![],
        }) else {
            panic!("an error is an error");
        };
        assert!(message.contains("type 5 code 1"), "{message}");
    }
}
