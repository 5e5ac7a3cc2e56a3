import { CAP_SYS_ADMIN, effectiveCapabilities, lacksCapability } from "./capabilities.ts";
import { assertEq } from "../../tests/rigs/assert.ts";

const status = (eff: string) => `Name:\tdeno\nCapInh:\t0000000000000000\nCapEff:\t${eff}\nCapBnd:\t000001ffffffffff\n`;

Deno.test("lacksCapability reads CapEff: a unit's reduced set lacks CAP_SYS_ADMIN, a full root set has it", () => {
  // the daemon unit's set: IPC_LOCK(14) NET_ADMIN(12) DAC_OVERRIDE(1) CHOWN(0) FOWNER(3) SYS_RAWIO(17)
  const unit = ((1n << 14n) | (1n << 12n) | (1n << 1n) | 1n | (1n << 3n) | (1n << 17n)).toString(16).padStart(16, "0");
  assertEq(effectiveCapabilities(status(unit)), BigInt(`0x${unit}`), "parsed");
  assertEq(lacksCapability(CAP_SYS_ADMIN, status(unit)), true, "unit set");
  assertEq(lacksCapability(CAP_SYS_ADMIN, status("000001ffffffffff")), false, "full set");
  assertEq(lacksCapability(CAP_SYS_ADMIN, "Name:\tx\n"), false, "unknown: not claimed");
});
