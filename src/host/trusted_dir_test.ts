import { assert, assertEq } from "../../tests/rigs/assert.ts";
import { makeDirs, untrustedDir } from "./trusted_dir.ts";

const NOBODY = 65534;

/** A directory under a fresh root-owned temp dir, with `mode` and owner. */
function dir(root: string, name: string, mode: number, uid = 0, gid = 0): string {
  const path = `${root}/${name}`;
  Deno.mkdirSync(path, { recursive: true });
  Deno.chmodSync(path, mode);
  Deno.chownSync(path, uid, gid);
  return path;
}

Deno.test("trusted dir: root's directories, parts still to be created and sticky world-writable parents are trusted", () => {
  const root = Deno.makeTempDirSync();
  try {
    assertEq(untrustedDir(dir(root, "run", 0o755)), null, "root's 0755");
    assertEq(untrustedDir(`${root}/run/not/yet`), null, "parts still to be created");
    assertEq(untrustedDir(`${dir(root, "tmp", 0o1777)}/mine`), null, "below a sticky world-writable dir (/tmp)");
    assertEq(
      untrustedDir(dir(root, "sock", 0o770, NOBODY, NOBODY), { owners: [NOBODY], writerGroups: [NOBODY] }),
      null,
      "the socket owner's dir, writable by the socket group",
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("trusted dir: another user's directory or parent, group or world write, and a link to such a directory are refused, naming the path and the fix", () => {
  const root = Deno.makeTempDirSync();
  try {
    const theirs = dir(root, "theirs", 0o755, NOBODY);
    const cases: [string, string | null, RegExp][] = [
      ["another user's directory", theirs, /theirs is owned by uid 65534, not by root: .*chown root/],
      ["the socket owner's directory as a parent", `${theirs}/sub`, /theirs is owned by uid 65534/],
      [
        "a group-writable directory",
        dir(root, "gw", 0o775, 0, NOBODY),
        /gw is writable by group 65534 \(mode 0775\).*chmod g-w/,
      ],
      [
        "a world-writable directory without the sticky bit",
        dir(root, "ww", 0o777),
        /ww is writable by every user and has no sticky bit.*chmod o-w/,
      ],
    ];
    Deno.symlinkSync(theirs, `${root}/link`);
    cases.push(["a link to another user's directory", `${root}/link`, /theirs is owned by uid 65534/]);
    for (const [what, path, want] of cases) {
      const why = untrustedDir(path!);
      assert(why !== null && want.test(why), `${what}: got ${why}`);
    }
    assert(untrustedDir(`${theirs}/sub`, { owners: [NOBODY] }) !== null, "owners apply to the directory itself only");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("makeDirs gives every directory it creates the mode asked for under a restrictive umask, and leaves existing ones alone", () => {
  const root = Deno.makeTempDirSync();
  try {
    Deno.chmodSync(root, 0o700);
    const old = Deno.umask(0o077);
    let made: string[];
    try {
      made = makeDirs(`${root}/a/b/c`, 0o755);
    } finally {
      Deno.umask(old);
    }
    assertEq(made.join(","), [`${root}/a`, `${root}/a/b`, `${root}/a/b/c`].join(","), "created, parents first");
    for (const p of made) assertEq(Deno.statSync(p).mode! & 0o777, 0o755, `${p} mode`);
    assertEq(Deno.statSync(root).mode! & 0o777, 0o700, "existing parent untouched");
    assertEq(makeDirs(`${root}/a/b/c`, 0o700).length, 0, "nothing to create");
    assertEq(Deno.statSync(`${root}/a/b/c`).mode! & 0o777, 0o755, "existing directory untouched");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
