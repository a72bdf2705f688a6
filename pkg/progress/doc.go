// Package progress defines the small events that cnab-airgap's library
// reports while it works. The library never prints; a caller that wants a
// display (the CLI draws bars) passes a Func.
//
// # Accounting rules
//
// Every emitter follows the same rules, so that a display can add events up
// without knowing which operation produced them:
//
//   - A phase announces itself once with StateTotal: Total is the sum of the
//     sizes of the distinct items of the phase (a blob shared by several
//     images or repositories is counted once) and Count is their number.
//   - StateStarted carries an item's size in Bytes; StateActive carries the
//     bytes just moved; StateDone and StateSkipped carry the item's size.
//   - A skipped item (already present at the target, mounted from another
//     repository, kept from an interrupted run) is reported with
//     StateSkipped and counts as done: bytes never have to move for a phase
//     to reach its Total.
//   - Bytes are never reported twice for the same item: when a transfer is
//     retried, the retry reports only the bytes beyond the furthest point an
//     earlier attempt reached (see Item), so a sum of StateActive bytes
//     never exceeds Total and never has to go backwards.
//   - StateDone with an empty Item closes the phase.
//
// Events for items that belong to one image of the bundle carry that
// image's exact reference in Image, so a display without a terminal can
// log one line per image.
package progress
