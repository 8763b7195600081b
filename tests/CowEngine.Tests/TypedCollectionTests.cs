using static CowEngine.Tests.Support.TestEngines;

namespace CowEngine.Tests;

/// <summary>
/// <see cref="CowList{T}"/> and <see cref="CowArray{T}"/>: typed state whose snapshots and
/// restores follow the view underneath, including the list's count (it lives in the view too).
/// </summary>
public sealed class TypedCollectionTests
{
    // ---- CowList ----

    /// <summary>The scenario: add 1, 2; snapshot1; add 3; snapshot2; add 4 -> 1,2,3,4 | 1,2 | 1,2,3.</summary>
    [Fact]
    public void List_WithSnapshots_EachSnapshotKeepsItsElementsAndCount()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 100);
        list.Add(1);
        list.Add(2);
        using CowList<int> snapshot1 = list.Snapshot();
        list.Add(3);
        using CowList<int> snapshot2 = list.Snapshot();
        list.Add(4);

        Assert.Equal([1, 2, 3, 4], list.ToArray());
        Assert.Equal([1, 2], snapshot1.ToArray());
        Assert.Equal([1, 2, 3], snapshot2.ToArray());
        Assert.Equal(4, list.Count);
        Assert.Equal(2, snapshot1.Count);
        Assert.Equal(3, snapshot2.Count);
        Assert.Equal(3, list[2]);
        Assert.Equal(100, snapshot1.Capacity);
    }

    [Fact]
    public void List_SnapshotsAreWritableAndIndependent()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 10);
        list.Add(1);
        using CowList<int> branch = list.Snapshot();

        branch.Add(20);
        branch[0] = 10;
        list.Add(2);

        Assert.Equal([1, 2], list.ToArray());
        Assert.Equal([10, 20], branch.ToArray());
    }

    [Fact]
    public void List_RestoreTo_RollsElementsAndCountBackThenForward()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<long>(engine, capacity: 5_000); // several pages of elements
        for (long i = 0; i < 1_000; i++)
            list.Add(i);
        using CowList<long> checkpoint = list.Snapshot();
        for (long i = 1_000; i < 4_000; i++)
            list.Add(i);
        list[5] = -5;
        using CowList<long> later = list.Snapshot();

        list.RestoreTo(checkpoint);
        Assert.Equal(1_000, list.Count);
        Assert.Equal(Enumerable.Range(0, 1_000).Select(i => (long)i), list.ToArray());

        list.Add(42); // the restored list goes on from the checkpoint
        Assert.Equal(1_001, list.Count);
        Assert.Equal(42, list[1_000]);
        Assert.Equal(1_000, checkpoint.Count);

        list.RestoreTo(later);
        Assert.Equal(4_000, list.Count);
        Assert.Equal(-5, list[5]);
        Assert.Equal(3_999, list[3_999]);
    }

    [Fact]
    public void List_AddToAFullList_ThrowsInvalidOperationException_AndKeepsTheList()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 3);
        list.Add(1);
        list.Add(2);
        list.Add(3);

        Assert.Throws<InvalidOperationException>(() => list.Add(4));
        Assert.Equal([1, 2, 3], list.ToArray());
    }

    [Fact]
    public void List_RemoveLastAndClear_AndTheirErrors()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 3);
        list.Add(1);
        list.Add(2);
        using CowList<int> snapshot = list.Snapshot();

        list.RemoveLast();
        Assert.Equal([1], list.ToArray());
        list.Clear();
        Assert.Equal(0, list.Count);
        Assert.Throws<InvalidOperationException>(() => list.RemoveLast());
        Assert.Equal([1, 2], snapshot.ToArray());
    }

    [Fact]
    public void List_IndexerOutsideCount_ThrowsIndexOutOfRangeException()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 8);
        list.Add(7);

        Assert.Equal(7, list[0]);
        Assert.Throws<IndexOutOfRangeException>(() => list[1]); // inside the capacity, outside the count
        Assert.Throws<IndexOutOfRangeException>(() => list[-1]);
    }

    [Fact]
    public void List_RestoreToAListOfAnotherCapacity_ThrowsArgumentException()
    {
        using CowMemoryEngine engine = NewEngine();
        using var list = new CowList<int>(engine, capacity: 8);
        using var other = new CowList<int>(engine, capacity: 9);

        Assert.Throws<ArgumentException>("source", () => list.RestoreTo(other));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowList<int>(engine, capacity: 0));
    }

    // ---- CowArray ----

    [Fact]
    public void Array_Indexer_ChecksBounds()
    {
        using CowMemoryEngine engine = NewEngine();
        using var array = new CowArray<int>(engine, length: 1_500); // 6,000 bytes: the view has 2 pages

        array[0] = 1;
        array[1_499] = 2;

        Assert.Equal(1_500, array.Length);
        Assert.Equal(2, array.AsSpan()[1_499]);
        Assert.Throws<IndexOutOfRangeException>(() => array[1_500]); // inside the view's second page, outside the array
        Assert.Throws<IndexOutOfRangeException>(() => array[-1]);
        Assert.Throws<IndexOutOfRangeException>(() => array[long.MaxValue]);
        Assert.Throws<ArgumentOutOfRangeException>(() => array.AsSpan(1_400, 101));
        Assert.Throws<ArgumentOutOfRangeException>(() => array.AsSpan(-1, 1));
        Assert.Equal(2, array.AsSpan(1_499, 1)[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CowArray<int>(engine, length: 0));
    }

    [Fact]
    public void Array_RestoreTo_AndSnapshotIndependence()
    {
        using CowMemoryEngine engine = NewEngine();
        using var array = new CowArray<double>(engine, length: 10_000);
        for (int i = 0; i < array.Length; i++)
            array[i] = i * 0.5;
        using CowArray<double> snapshot = array.Snapshot();
        array[3] = -1;
        array[9_999] = -2;
        snapshot[4] = -3; // snapshots are writable, and private to themselves

        Assert.Equal(1.5, snapshot[3]);
        Assert.Equal(2.0, array[4]);

        array.RestoreTo(snapshot);

        Assert.Equal(-3, array[4]);
        Assert.Equal(1.5, array[3]);
        Assert.Equal(9_999 * 0.5, array[9_999]);
        Assert.Empty(array.View.GetChangedPages(snapshot.View));
    }

    [Fact]
    public void Array_RestoreToAnArrayOfAnotherLength_ThrowsArgumentException()
    {
        using CowMemoryEngine engine = NewEngine();
        using var array = new CowArray<int>(engine, length: 100);
        using var other = new CowArray<int>(engine, length: 101); // same one-page view, other length

        Assert.Throws<ArgumentException>("source", () => array.RestoreTo(other));
    }

    /// <summary>
    /// A 64 MiB array of longs (32 segments): snapshot, modify a scattered few elements, check both
    /// sides and the diff, restore, and check every element again.
    /// </summary>
    [Fact]
    public void Array_64MiBOfLongs_SnapshotModifyRestore()
    {
        const long Length = 64L << 20 >> 3;
        const long Stride = 4_099; // one element on most pages, never two on the same one
        using CowMemoryEngine engine = NewEngine();
        using var array = new CowArray<long>(engine, Length);
        Span<long> all = array.AsSpan();
        for (int i = 0; i < all.Length; i++)
            all[i] = i;
        using CowArray<long> snapshot = array.Snapshot();

        var modifiedPages = new SortedSet<long>();
        for (long i = 0; i < Length; i += Stride)
        {
            array[i] = -i - 1;
            modifiedPages.Add(i * sizeof(long) / CowMemoryEngine.PageSize);
        }

        Assert.Equal(modifiedPages.ToArray(), array.View.GetChangedPages(snapshot.View).ToArray());
        Assert.Equal(modifiedPages.Count, engine.GetStats().PagesCopied);
        Span<long> saved = snapshot.AsSpan();
        for (int i = 0; i < saved.Length; i++)
            if (saved[i] != i)
                Assert.Fail($"the snapshot's element {i} is {saved[i]}");
        Assert.Equal(-Stride - 1, array[Stride]);

        array.RestoreTo(snapshot);

        for (int i = 0; i < all.Length; i++)
            if (all[i] != i)
                Assert.Fail($"element {i} is {all[i]} after the restore");
        // The snapshot's pages, and the array's own copy of each page it wrote (restored by copying
        // the snapshot's bytes back into it).
        Assert.Equal(Length * sizeof(long) / CowMemoryEngine.PageSize + modifiedPages.Count, engine.GetStats().SlotsInUse);
        Assert.Equal(modifiedPages.Count, engine.GetStats().PagesRestoredByCopy);
    }
}
