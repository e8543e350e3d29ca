import { describe, expect, it } from "vitest";
import { capacityProblem, waitingForCapacity } from "./capacity.js";

describe("capacityProblem", () => {
  const small = { cpu: 2, memoryMiB: 23_962 };
  const big = { cpu: 16, memoryMiB: 4096 };

  it("says nothing when a worker fits, or when none is connected (calls wait for one)", () => {
    expect(capacityProblem('function "f"', { cpu: 2, memoryMiB: 1024 }, [small])).toBeUndefined();
    expect(capacityProblem('function "f"', { cpu: 64, memoryMiB: 1024 }, [])).toBeUndefined();
  });

  it("names the largest worker and the option to lower", () => {
    expect(capacityProblem('function "big"', { cpu: 64, memoryMiB: 1024 }, [small])).toBe(
      'function "big" asks for 64 CPUs; the only worker has 2 CPUs and 23.4 GiB: lower cpu, or add a larger worker',
    );
    expect(capacityProblem('class "M"', { cpu: 1, memoryMiB: 512_000 }, [small, big])).toBe(
      'class "M" asks for 500 GiB; the largest worker has 2 CPUs and 23.4 GiB: lower memory, or add a larger worker',
    );
    expect(capacityProblem('function "f"', { cpu: 8, memoryMiB: 8192 }, [small, big])).toMatch(
      /asks for 8 CPUs and 8 GiB; .*: lower cpu or memory \(no worker has both\)/,
    );
    expect(capacityProblem('function "f"', { cpu: 99, memoryMiB: 99_999 }, [small])).toMatch(/lower cpu and memory/);
  });

  it("says how full the workers are while a container waits for room", () => {
    expect(
      waitingForCapacity('function "f"', { cpu: 2, memoryMiB: 1024 }, [
        { capacity: { cpu: 2, memoryMiB: 4096 }, used: { cpu: 2, memoryMiB: 1024 } },
      ]),
    ).toBe('waiting for capacity: function "f" needs 2 CPUs and 1 GiB; 2 of 2 CPUs in use, 1 GiB of 4 GiB');
  });
});
