"""The English words of the engine family of messages (`engine.*`); the page's table holds their Chinese.

Paused and cooling runs, key states, budgets, batch delivery, captioning jobs, Test connection, the
engine's refusals and the data folder's faults. A pause reason is `engine.paused` with the reason
nested, so the page can say "Paused — {reason}" without the prefix.
"""

MESSAGES: dict[str, str | dict[str, str]] = {
    "engine.interrupted": "interrupted",
    "engine.stopped": "stopped",
    # -- refusals of the engine's controls ----------------------------------------------------------
    "engine.no_run": "no run {run_id}",
    "engine.no_task": "no task {task_id}",
    "engine.no_result": "no result {result_id}",
    "engine.no_api_url": "no API URL set",
    "engine.prompt_empty": "the prompt is empty",
    "engine.prompt_field_empty": "'prompt' is empty",
    "engine.prompt_cannot_change": (
        "'prompt' cannot change these tasks: each held task has a prompt of its own (filled from the prompt's "
        "{{placeholders}} or variables, a sidecar caption or a table row); run the rest without editing the prompt, "
        "or retry tasks one by one with a new prompt"),
    "engine.result_image_gone": "the result's image is no longer in the cache",
    "engine.no_held_tasks": "this run has no held tasks: every task was already queued",
    "engine.task_running": "the task is running; stop it or wait for it to finish",
    "engine.concurrency_range": "'concurrency' must be a whole number between {low} and {high}",
    "engine.stored_profile_unusable": (
        "this run's stored API profile cannot be used ({reason}); resume or retry it from the page, which sends "
        "the current profile"),
    "engine.not_running": "the engine is not running",
    "engine.no_answer": "the engine did not answer within {seconds:g} s; try again",
    # -- pauses, cooling and keys ---------------------------------------------------------------------
    "engine.paused": "paused: {reason}",
    "engine.pause_quota": "{reason}; resume when the quota is back",
    "engine.pause_keys": "every key is parked ({keys}); fix or replace the keys, or wait for the quota, then resume",
    "engine.parked_key": "key {number} {key}: {reason}",
    "engine.throttle_status": "{status} from the gateway",
    "engine.throttle_status_code": "{status} from the gateway ({error_code})",
    "engine.throttle_rate_limit": "rate limit from the gateway",
    "engine.throttle_rate_limit_code": "rate limit from the gateway ({error_code})",
    "engine.key_quota_used_up": "{reason}: quota used up",
    "engine.key_rate_limited": "{reason}: rate limited for over {seconds:g}s",
    "engine.key_refused": "refused by the gateway: {error}",
    "engine.no_key": "(no key)",
    "engine.rate_limited_too_long": (
        "rate limited for longer than {seconds:g}s without a call getting through; last: {error}"),
    # -- budget ---------------------------------------------------------------------------------------
    "engine.budget_reached": "the budget of {budget} is reached: the next call could pass it; raise the budget and resume",
    "engine.budget_reached_per_call": (
        "the budget of {budget} is reached: the next call could pass it at about {per_call} a call; raise the "
        "budget and resume"),
    "engine.budget_batch_run": (
        "'budget' cannot hold back a batch run (its tasks are submitted together); remove the budget or choose "
        "live delivery"),
    # -- tasks ----------------------------------------------------------------------------------------
    "engine.console_bug": "the console hit a bug ({kind}: {error}); the details are in {log} in the data folder",
    "engine.console_bug_short": "the console hit a bug ({kind}: {error})",
    "engine.own_settings_unusable": "this task's own settings cannot be used: {reason}",
    "engine.reference_unreadable": "reference image {number} ({name}): {reason}",
    "engine.answer_kept": "{reason}; its answer is kept and stored on resume, without a new call",
    "engine.answer_not_kept": (
        "{reason}; its answer could not be kept (too much is held in memory): it will be called again"),
    "engine.warnings": "{warnings}",
    "engine.too_many_inputs": "{count} task(s) refused ({names}): {reason}",
    "engine.input_images": "{count} input images",
    # -- the data folder ------------------------------------------------------------------------------
    "engine.disk_full": "the disk holding the data folder {folder} is full; free some space, then {then}",
    "engine.disk_full_free": "the disk holding the data folder {folder} is full ({free} free); free some space, then {then}",
    "engine.read_only": "the data folder {folder} cannot be written (read-only or not allowed); make it writable, then {then}",
    "engine.folder_gone": (
        "the data folder {folder} was removed while the console was running; restart the console (runs and results "
        "are in the data folder)"),
    "engine.then_resume": "resume",
    "engine.then_restart": "start the console again, or pick another folder with --data-dir",
    "engine.damaged_in_cache": "{name} is damaged in the cache: its {size:,} bytes do not match the image received",
    # -- batch delivery -------------------------------------------------------------------------------
    "engine.batch_stopped": "stopped: the batch was cancelled",
    "engine.batch_expired": "the batch expired before this task was done",
    "engine.batch_cancelled": "the batch was cancelled at the provider before this task was done",
    "engine.batch_failed": "the batch failed: {said}",
    "engine.batch_failed_no_reason": "the batch failed: the provider gave no reason",
    "engine.batch_ended": "the batch ended ({status}) without an answer for this task",
    "engine.batch_unsent_paused": "the batch could not be submitted ({error}); its tasks wait: resume to submit them again",
    "engine.batch_refused": "the batch could not be submitted: {error}",
    "engine.batch_unknown": "the provider no longer knows this batch ({error})",
    "engine.batch_poll_refused_paused": "batch {number} could not be read at the provider: the key was refused ({error}); its answers wait there: fix the key, then resume",
    "engine.batch_looks_failing": "batch {number} could not be read at the provider {count} times in a row ({error}); trying again every {seconds} s: the batch goes on there meanwhile",
    "engine.batch_lookup_paused": "batch {batch} could not be looked for at the provider ({error}); resume to try again",
    "engine.batch_resent": "not submitted before the restart; sent again",
    "engine.batch_fault_paused": "{reason}; the batch's answers stay at the provider and are stored on resume",
    "engine.batch_line_empty": "the batch line had no answer",
    # -- captioning jobs ------------------------------------------------------------------------------
    "engine.caption_job_running": (
        "captioning job {job} of this run is still running ({done} of {total} done); cancel it or wait for it to "
        "finish"),
    "engine.nothing_to_caption": "nothing to caption: {reason}",
    "engine.no_selected_results": "no result of this run is selected",
    "engine.no_results_yet": "this run has no results yet",
    "engine.results_have_caption": "{count} result(s) already have a caption (set 'overwrite' to replace them)",
    "engine.selected_have_caption": (
        "{count} selected result(s) already have a caption (set 'overwrite' to replace them)"),
    "engine.results_no_source": (
        "{count} result(s) have no source image (Generate mode); caption the results themselves"),
    "engine.selected_no_source": (
        "{count} selected result(s) have no source image (Generate mode); caption the results themselves"),
    "engine.job_stopped_early": "stopped early: {reason}",
    "engine.job_quota": "{reason}; start a new job when the quota is back",
    "engine.job_keys": (
        "every key is parked ({keys}); fix or replace the keys, or wait for the quota, then start a new job"),
    "engine.caption_unwritten": "the caption could not be written: {reason}",
    "engine.caption_unwritten_kept": (
        "the caption could not be written: {reason}; it is kept and written by the next job, without a call"),
}
